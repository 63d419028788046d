"""An in-domain teacher: a VGG-style CNN designed for 48x48 faces, trained from scratch.

Why: ImageNet architectures downsample 4x in their stem, so a 48-px face is a 12x12 map
before the first block and 2x2 (or 1x1) at the end; such teachers scored below the student
they were meant to teach. The CNNs that do well on FER2013 (VGG-like, 70-73 % in the
literature) keep full resolution in their first convolutions and halve it only after two
3x3 convs per stage: 48 -> 24 -> 12 -> 6 -> 3, global average pool, dropout, linear.
"""

from __future__ import annotations

import torch
from torch import nn

from training.models import register_model
from training.models.layers import Standardize


def vgg_stage(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    """``convs`` 3x3 conv + BN + ReLU, then a 2x2 max-pool (also what bf16 CPU kernels run fastest)."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class VGG48(nn.Module):
    """(B, 1, 48, 48) pixels in [0, 1] -> logits; ``widths`` are the four stages' channels."""

    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (32, 64, 128, 256), convs: int = 2,
                 drop_rate: float = 0.3) -> None:
        super().__init__()
        self.standardize = Standardize()
        chans = (1, *widths)
        self.features = nn.Sequential(*(vgg_stage(chans[i], chans[i + 1], convs) for i in range(len(widths))))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(self.standardize(x))))


@register_model(kind="teacher", source="fercurate")
def vgg48(num_classes: int, **kwargs) -> nn.Module:
    """VGG-style CNN at 48 px (1.2 M params, ~120 M multiply-adds): the ``cpu`` profile's strong teacher."""
    return VGG48(num_classes, **kwargs)


@register_model(kind="teacher", source="fercurate")
def vgg48_deep(num_classes: int, **kwargs) -> nn.Module:
    """VGG48 with three 3x3 convs per stage (2.0 M params, ~190 M multiply-adds): a second in-domain
    teacher whose larger receptive field per stage makes other mistakes than vgg48's."""
    kwargs = {"convs": 3, **kwargs}
    return VGG48(num_classes, **kwargs)


@register_model(kind="teacher", source="fercurate")
def vgg48_wide(num_classes: int, **kwargs) -> nn.Module:
    """VGG48 at twice the width (4.7 M params, ~470 M multiply-adds): for the ``paper`` profile on a GPU."""
    kwargs = {"widths": (64, 128, 256, 512), **kwargs}
    return VGG48(num_classes, **kwargs)
