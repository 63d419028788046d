"""Layers shared by the teachers and the student."""

from __future__ import annotations

import torch
from torch import nn

#: Every model of the registry takes (B, 1, INPUT_SIZE, INPUT_SIZE) pixels: FER2013's size.
INPUT_SIZE = 48
#: Pixel mean and standard deviation of FER2013 Training (3,000 random images, pixels in [0, 1]).
FER2013_MEAN = 0.5058
FER2013_STD = 0.2533


class Standardize(nn.Module):
    """Maps [0, 1] pixels to zero mean and unit variance inside the model.

    It lives in the model (not in the data pipeline) because torchattacks perturbs inputs in
    [0, 1]: every model of the registry takes raw [0, 1] pixels.
    """

    def __init__(self, mean: float = FER2013_MEAN, std: float = FER2013_STD) -> None:
        super().__init__()
        self.mean = mean
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"
