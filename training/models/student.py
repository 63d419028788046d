"""The student: a small hybrid CNN-Transformer for 48x48 grayscale faces.

Convolutions see local texture where it is cheap to look (48 -> 24 -> 12 px); a few
transformer blocks then relate the 6x6 regions of the face to each other (brows to mouth),
which small CNNs do only through a deep stack. Layout::

    [0,1] pixels -> standardize
    stem      3x3 conv 1->c0 @48, 3x3/2 conv c0->c1 @24         (BN, GELU)
    stage 1   inverted-residual blocks @24x24
    stage 2   3x3/2 conv, inverted-residual blocks @12x12
    tokens    3x3/2 conv -> 6x6 = 36 tokens + learned position embedding
    mixer     timm ViT blocks (multi-head self-attention + MLP, pre-norm, stochastic depth)
    head      LayerNorm, mean over tokens, dropout, linear

Only Conv/BN/GELU/LayerNorm/attention/linear ops: exports to ONNX (opset 17).
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from training.models import register_model
from training.models.layers import INPUT_SIZE, Standardize
from training.models.vgg48 import vgg_stage


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.GELU())


class InvertedResidual(nn.Module):
    """MobileNetV2 block (1x1 expand, 3x3 depthwise, 1x1 project) with a residual and stochastic depth."""

    def __init__(self, dim: int, expand: int, drop_path: float) -> None:
        super().__init__()
        hidden = dim * expand
        self.body = nn.Sequential(conv_bn_act(dim, hidden, 1), conv_bn_act(hidden, hidden, 3, groups=hidden),
                                  nn.Conv2d(hidden, dim, 1, bias=False), nn.BatchNorm2d(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.body(x))


class TokenMixer(nn.Module):
    """6x6 feature map -> 36 tokens + learned positions -> timm ViT blocks -> LayerNorm -> mean token."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_path: list[float]) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, (INPUT_SIZE // 8) ** 2, dim))
        self.blocks = nn.Sequential(*(Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=r) for r in drop_path))
        self.norm = nn.LayerNorm(dim)
        trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embed
        return self.norm(self.blocks(tokens)).mean(dim=1)


class ConvTransformerStudent(nn.Module):
    """(B, 1, 48, 48) pixels in [0, 1] -> logits: a VGG trunk to 6x6, then transformer blocks.

    The trunk is the in-domain teacher's first three stages (two 3x3 convs per stage at 48, 24,
    12 px), which is what 48-px faces need and what AMX/bf16 CPU kernels run fastest (a step
    costs 0.26 s against the MobileNet-block student's 0.42 s on 2 cores); a 3x3 conv lifts the
    6x6 map to ``dim`` channels and the blocks relate its 36 regions to each other.
    """

    def __init__(self, num_classes: int = 7, widths: tuple[int, int, int] = (32, 64, 128), dim: int = 192,
                 transformer_depth: int = 3, num_heads: int = 4, mlp_ratio: float = 2.0, drop_rate: float = 0.3,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.standardize = Standardize()
        self.trunk = nn.Sequential(vgg_stage(1, c0), vgg_stage(c0, c1), vgg_stage(c1, c2),
                                   nn.Conv2d(c2, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.GELU())
        rates = torch.linspace(0, drop_path_rate, transformer_depth).tolist()
        self.mixer = TokenMixer(dim, transformer_depth, num_heads, mlp_ratio, rates)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.mixer(self.trunk(self.standardize(x)))))


class HybridStudent(nn.Module):
    """(B, 1, 48, 48) pixels in [0, 1] -> logits (B, num_classes)."""

    def __init__(self, num_classes: int = 7, widths: tuple[int, int, int, int] = (16, 48, 128, 192),
                 conv_depths: tuple[int, int] = (1, 2), expand: int = 2, transformer_depth: int = 4,
                 num_heads: int = 4, mlp_ratio: float = 2.0, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        c0, c1, c2, dim = widths
        n_blocks = sum(conv_depths) + transformer_depth
        rates = iter(torch.linspace(0, drop_path_rate, n_blocks).tolist())  # deeper blocks drop more
        self.standardize = Standardize()
        self.stem = nn.Sequential(conv_bn_act(1, c0), conv_bn_act(c0, c1, stride=2))
        self.stage1 = nn.Sequential(*(InvertedResidual(c1, expand, next(rates)) for _ in range(conv_depths[0])))
        self.stage2 = nn.Sequential(conv_bn_act(c1, c2, stride=2),
                                    *(InvertedResidual(c2, expand, next(rates)) for _ in range(conv_depths[1])))
        self.to_tokens = conv_bn_act(c2, dim, stride=2)
        self.pos_embed = nn.Parameter(torch.zeros(1, (INPUT_SIZE // 8) ** 2, dim))
        self.blocks = nn.Sequential(*(Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=next(rates))
                                      for _ in range(transformer_depth)))
        self.norm = nn.LayerNorm(dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes)
        trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.stage1(self.stem(self.standardize(x))))
        tokens = self.to_tokens(x).flatten(2).transpose(1, 2) + self.pos_embed
        tokens = self.norm(self.blocks(tokens))
        return self.head(self.head_drop(tokens.mean(dim=1)))


@register_model(kind="student", source="fercurate")
def hybrid_student(num_classes: int, **kwargs) -> nn.Module:
    """The default student (1.6 M params, 88 M multiply-adds); alias ``student``."""
    return HybridStudent(num_classes, **kwargs)


@register_model(kind="student", source="fercurate")
def conv_transformer_student(num_classes: int, **kwargs) -> nn.Module:
    """VGG trunk + 3 transformer blocks at 6x6 (1.4 M params): the bf16-CPU-friendly student."""
    return ConvTransformerStudent(num_classes, **kwargs)


@register_model(kind="student", source="fercurate")
def hybrid_student_small(num_classes: int, **kwargs) -> nn.Module:
    """A cheaper variant (0.6 M params, 33 M multiply-adds) for quick runs and tighter latency budgets."""
    kwargs = {"widths": (16, 32, 96, 128), "conv_depths": (1, 1), "transformer_depth": 3, **kwargs}
    return HybridStudent(num_classes, **kwargs)
