"""EfficientNet-b0 encoder with the parameter names of lukemelas ``efficientnet_pytorch`` 0.7.1 as wrapped by
segmentation-models-pytorch 0.3 (``EfficientNetEncoder``, depth 5), so that ``encoder.*`` keys of the authors'
checkpoint load unchanged.

Numerically relevant details (spec b.1, pitfall 3): every conv uses the "static same" zero padding computed once
for a 224×224 input (asymmetric for stride-2 convs), BatchNorm eps 1e-3 / momentum 0.01, Swish activations,
squeeze-excitation with biases, drop-connect (training only) with rate ``0.2 · i / 16`` for global block index i.
``_conv_head`` / ``_bn1`` are never used in ``forward`` but exist for strict checkpoint loading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EFFICIENTNET_B0_BLOCKS", "BlockSpec", "EfficientNetEncoder", "MBConvBlock", "StaticSameConv2d"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
NOMINAL_IMAGE_SIZE = 224


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: kernel, stride, input / output channels, expansion ratio, SE ratio (of the input)."""

    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    expand_ratio: int
    se_ratio: float = 0.25


def _expand(kernel: int, stride: int, in_ch: int, out_ch: int, expand: int, repeats: int) -> list[BlockSpec]:
    first = BlockSpec(kernel, stride, in_ch, out_ch, expand)
    return [first] + [BlockSpec(kernel, 1, out_ch, out_ch, expand) for _ in range(repeats - 1)]


# EfficientNet-b0 (width 1.0, depth 1.0): the 7 stages of the original expanded to the 16 blocks of spec b.1.
EFFICIENTNET_B0_BLOCKS: tuple[BlockSpec, ...] = tuple(
    _expand(3, 1, 32, 16, 1, 1)
    + _expand(3, 2, 16, 24, 6, 2)
    + _expand(5, 2, 24, 40, 6, 2)
    + _expand(3, 2, 40, 80, 6, 3)
    + _expand(5, 1, 80, 112, 6, 3)
    + _expand(5, 2, 112, 192, 6, 4)
    + _expand(3, 1, 192, 320, 6, 1)
)
# smp's stage boundaries (stage_idxs = (3, 5, 9, 16)): features f2..f5 are taken after these block counts.
STAGE_ENDS: tuple[int, ...] = (3, 5, 9, 16)


def static_same_padding(kernel: int, stride: int, image_size: int) -> tuple[int, int, int, int]:
    """TF-"SAME" zero padding (left, right, top, bottom) computed once for a square ``image_size`` input."""
    out = -(-image_size // stride)
    total = max((out - 1) * stride + kernel - image_size, 0)
    return (total // 2, total - total // 2, total // 2, total - total // 2)


class StaticSameConv2d(nn.Conv2d):
    """``nn.Conv2d`` preceded by a fixed zero padding computed for the nominal 224 input (lukemelas semantics).

    Keeps the plain ``weight``/``bias`` parameter names. Input B×C×H×W → B×C'×ceil(H/s)×ceil(W/s) for even H, W.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        image_size: int = NOMINAL_IMAGE_SIZE,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=bias)
        self.static_padding = static_same_padding(kernel_size, stride, image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.static_padding):
            x = F.pad(x, self.static_padding)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def drop_connect(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth of lukemelas: keep with prob 1 − p, survivors divided by 1 − p."""
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
    return x / keep * mask


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation (lukemelas ``MBConvBlock`` names).

    B×in×H×W → B×out×H/s×W/s. ``image_size`` is the nominal (224-based) input size of the block, used only for
    the static padding of the depthwise conv.
    """

    def __init__(self, spec: BlockSpec, image_size: int) -> None:
        super().__init__()
        self.spec = spec
        expanded = spec.in_ch * spec.expand_ratio
        if spec.expand_ratio != 1:
            self._expand_conv = StaticSameConv2d(spec.in_ch, expanded, 1, image_size=image_size)
            self._bn0 = _bn(expanded)
        self._depthwise_conv = StaticSameConv2d(
            expanded, expanded, spec.kernel, stride=spec.stride, groups=expanded, image_size=image_size
        )
        self._bn1 = _bn(expanded)
        squeezed = max(1, int(spec.in_ch * spec.se_ratio))
        self._se_reduce = StaticSameConv2d(expanded, squeezed, 1, bias=True, image_size=1)
        self._se_expand = StaticSameConv2d(squeezed, expanded, 1, bias=True, image_size=1)
        self._project_conv = StaticSameConv2d(expanded, spec.out_ch, 1, image_size=image_size)
        self._bn2 = _bn(spec.out_ch)

    @property
    def has_skip(self) -> bool:
        return self.spec.stride == 1 and self.spec.in_ch == self.spec.out_ch

    def forward(self, inputs: torch.Tensor, drop_connect_rate: float = 0.0) -> torch.Tensor:
        x = inputs
        if self.spec.expand_ratio != 1:
            x = F.silu(self._bn0(self._expand_conv(x)))
        x = F.silu(self._bn1(self._depthwise_conv(x)))
        squeezed = F.adaptive_avg_pool2d(x, 1)
        squeezed = self._se_expand(F.silu(self._se_reduce(squeezed)))
        x = torch.sigmoid(squeezed) * x
        x = self._bn2(self._project_conv(x))
        if self.has_skip:
            x = drop_connect(x, drop_connect_rate, self.training) + inputs
        return x


class EfficientNetEncoder(nn.Module):
    """EfficientNet-b0 feature extractor (smp 0.3 ``EfficientNetEncoder``, depth 5).

    ``forward(x)`` with x B×3×H×W (H, W multiples of 32) returns 6 features:
    [x, B×32×H/2, B×24×H/4, B×40×H/8, B×112×H/16, B×320×H/32].
    """

    out_channels: tuple[int, ...] = (3, 32, 24, 40, 112, 320)

    def __init__(self, blocks: tuple[BlockSpec, ...] = EFFICIENTNET_B0_BLOCKS, drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        self.drop_connect_rate = drop_connect_rate
        image_size = NOMINAL_IMAGE_SIZE
        self._conv_stem = StaticSameConv2d(3, 32, 3, stride=2, image_size=image_size)
        self._bn0 = _bn(32)
        image_size = -(-image_size // 2)
        block_list = []
        for spec in blocks:
            block_list.append(MBConvBlock(spec, image_size))
            image_size = -(-image_size // spec.stride)
        self._blocks = nn.ModuleList(block_list)
        head_in = blocks[-1].out_ch
        self._conv_head = StaticSameConv2d(head_in, 4 * head_in, 1, image_size=image_size)
        self._bn1 = _bn(4 * head_in)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"EfficientNetEncoder: x must be B×3×H×W, got {tuple(x.shape)}")
        features = [x]
        x = F.silu(self._bn0(self._conv_stem(x)))
        features.append(x)
        start = 0
        for end in STAGE_ENDS:
            for index in range(start, end):
                rate = self.drop_connect_rate * index / len(self._blocks)
                x = self._blocks[index](x, rate)
            features.append(x)
            start = end
        return features
