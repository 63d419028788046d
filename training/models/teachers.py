"""Teacher networks from timm, built for 48x48 grayscale faces (``in_chans=1``).

Three families, so that the teachers make different mistakes: a ResNet, a ConvNeXt and a ViT
with 8-pixel patches (36 tokens at 48 px). The plain ``resnet18`` / ``convnext_atto`` keep
timm's ImageNet stem (4x downsampling before the first block: a 48-px face ends as a 2x2 or
1x1 map) and trained *weaker* than the student; the ``_48`` variants keep resolution through
their stem, which is what a 48-px face needs (their cost grows with it: 16x and 4x).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from training.errors import TrainingError
from training.models import register_model
from training.models.layers import Standardize


class TimmTeacher(nn.Module):
    """A timm network behind a :class:`Standardize` layer, so that it takes [0, 1] pixels.

    ``pretrained`` tells the run to fine-tune it (``pretrained_teacher_epochs``) rather than
    train it from scratch (``teacher_epochs``).
    """

    def __init__(self, net: nn.Module, pretrained: bool = False) -> None:
        super().__init__()
        self.standardize = Standardize()
        self.net = net
        self.pretrained = pretrained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def create_timm_teacher(arch: str, num_classes: int, checkpoint: str | None = None, **kwargs) -> TimmTeacher:
    """Builds ``arch`` offline; ``checkpoint`` is a local state dict, never a download.

    The state dict is the timm network's (``teacher.net.state_dict()``, without the
    wrapper's ``net.`` prefix, or a timm/ImageNet file). It goes through timm's own
    pretrained loader, which sums RGB stem weights into one channel and drops a classifier
    whose class count differs, so an ImageNet file of the same architecture works too.
    """
    pretrained = checkpoint is not None
    if pretrained and not Path(checkpoint).is_file():
        raise TrainingError(f"teacher checkpoint {checkpoint} not found: pass the path of a local "
                            f"{arch} state dict, or no checkpoint to start from random weights")
    try:
        net = timm.create_model(arch, pretrained=pretrained, num_classes=num_classes, in_chans=1,
                                pretrained_cfg_overlay=dict(file=str(checkpoint)) if pretrained else None, **kwargs)
    except RuntimeError as e:   # a state dict of another architecture or shape
        first = str(e).strip().splitlines()[0][:200]
        raise TrainingError(f"teacher checkpoint {checkpoint} does not fit {arch} ({kwargs or 'timm defaults'}): "
                            f"{first}; pass a state dict of this architecture") from None
    return TimmTeacher(net, pretrained)


@register_model(kind="teacher", source="timm:resnet18")
def resnet18(num_classes: int, checkpoint: str | None = None, **kwargs) -> nn.Module:
    """ResNet-18 (11 M params) at 48 px: a 2x2 final feature map."""
    return create_timm_teacher("resnet18", num_classes, checkpoint, **kwargs)


@register_model(kind="teacher", source="timm:convnext_atto")
def convnext_atto(num_classes: int, checkpoint: str | None = None, **kwargs) -> nn.Module:
    """ConvNeXt-Atto (3.4 M params): large depthwise kernels, LayerNorm, GELU."""
    return create_timm_teacher("convnext_atto", num_classes, checkpoint, **kwargs)


@register_model(kind="teacher", source="timm:resnet18")
def resnet18_48(num_classes: int, checkpoint: str | None = None, **kwargs) -> nn.Module:
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool: stages at 48/24/12/6 px (1.3 G multiply-adds).

    What CIFAR ResNets do for 32-px images; for the ``paper`` profile (a GPU)."""
    teacher = create_timm_teacher("resnet18", num_classes, checkpoint, **kwargs)
    stem = teacher.net.conv1
    teacher.net.conv1 = nn.Conv2d(stem.in_channels, stem.out_channels, 3, 1, 1, bias=False)
    if checkpoint is not None:   # a 7x7 checkpoint stem does not fit a 3x3 one: keep its centre
        teacher.net.conv1.weight.data.copy_(stem.weight.data[:, :, 2:5, 2:5])
    teacher.net.maxpool = nn.Identity()
    return teacher


@register_model(kind="teacher", source="timm:convnext_atto")
def convnext_atto_48(num_classes: int, checkpoint: str | None = None, **kwargs) -> nn.Module:
    """ConvNeXt-Atto with a 2x2 patch stem: stages at 24/12/6/3 px (timm's ``patch_size=2`` alone
    moves the lost downsampling into the first stage, which timm does to keep a stride of 32)."""
    teacher = create_timm_teacher("convnext_atto", num_classes, checkpoint, **{"patch_size": 2, **kwargs})
    teacher.net.stages[0].downsample = nn.Identity()
    return teacher


@register_model(kind="teacher", source="timm:vit_tiny_patch16_224")
def vit_tiny_patch8(num_classes: int, checkpoint: str | None = None, **kwargs) -> nn.Module:
    """ViT-Tiny (5.4 M params) on 8-pixel patches of the 48 px face: 36 tokens (4-px patches cost 4x)."""
    kwargs = {"img_size": 48, "patch_size": 8, **kwargs}
    return create_timm_teacher("vit_tiny_patch16_224", num_classes, checkpoint, **kwargs)
