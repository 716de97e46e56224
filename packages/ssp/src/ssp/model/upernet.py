"""UperNet head (pyramid pooling + FPN) with the naming of Hugging Face's ``UperNetHead``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssp.config import UperNetConfig

__all__ = ["ConvModule", "PyramidPoolingModule", "UperNetHead", "folded_conv_bn"]


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize, ``align_corners=False`` (every resize inside the head)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def folded_conv_bn(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``norm(conv(x))`` as one convolution (eval-mode BN: running statistics)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = norm.bias - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale.view(-1, 1, 1, 1), bias


class ConvModule(nn.Sequential):
    """``conv`` (no bias) -> ``batch_norm`` -> ReLU.

    ``impl``: "fast" folds the eval-mode BN into the convolution and applies the ReLU in place (exact within
    float32 rounding); "reference" runs the three modules as the authors do. Training-mode BN always runs as is.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()
        self.impl = "fast"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "reference" or self.batch_norm.training:
            return super().forward(x)
        weight, bias = folded_conv_bn(self.conv, self.batch_norm)
        return F.relu(F.conv2d(x, weight, bias, padding=self.conv.padding), inplace=True)


def _bin_matrix(length: torch.Tensor | int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``bins×length`` averaging matrix of adaptive average pooling: bin i covers [floor(iL/s), ceil((i+1)L/s))."""
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * length, bins, rounding_mode="floor")
    end = torch.div((index + 1) * length + bins - 1, bins, rounding_mode="floor")
    position = torch.arange(length, device=like.device)
    inside = ((position[None] >= start[:, None]) & (position[None] < end[:, None])).to(like.dtype)
    return inside / inside.sum(dim=1, keepdim=True)


def adaptive_avg_pool_matmul(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``AdaptiveAvgPool2d(bins)`` of ``B×C×H×W`` as two products with bin-averaging matrices: the same means
    (summation order aside), expressible in ONNX for any input size (ONNX has no adaptive pooling)."""
    rows, cols = _bin_matrix(x.shape[-2], bins, x), _bin_matrix(x.shape[-1], bins, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


class PyramidPoolingModule(nn.ModuleList):
    """For each pool scale s: ``{i}.0`` AdaptiveAvgPool(s), ``{i}.1`` 1×1 ConvModule; each resized back to the input.

    While exporting to ONNX the pooling runs as :func:`adaptive_avg_pool_matmul` (dynamic input sizes).
    """

    def __init__(self, pool_scales: tuple[int, ...], in_channels: int, channels: int) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvModule(in_channels, channels, 1)) for scale in pool_scales
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if torch.onnx.is_in_onnx_export():
            return [resize(block[1](adaptive_avg_pool_matmul(x, block[0].output_size)), x.shape[2:]) for block in self]
        return [resize(block(x), x.shape[2:]) for block in self]


class UperNetHead(nn.Module):
    """Four maps ``B×C_i×H_i×W_i`` (fine -> coarse) -> logits ``B×n×H_0×W_0`` (stride 4)."""

    def __init__(self, config: UperNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or UperNetConfig()
        self.config = cfg
        channels = cfg.channels
        self.classifier = nn.Conv2d(channels, cfg.num_classes, kernel_size=1)
        self.psp_modules = PyramidPoolingModule(cfg.pool_scales, cfg.in_channels[-1], channels)
        self.bottleneck = ConvModule(cfg.in_channels[-1] + len(cfg.pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in cfg.in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3, padding=1) for _ in cfg.in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(cfg.in_channels) * channels, channels, 3, padding=1)

    def psp_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck on ``concat[x, pooled_1, pooled_2, pooled_3, pooled_6]``."""
        return self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))

    def last_feature(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``fpn_bottleneck`` output ``B×channels×H_0×W_0`` (the input of the classifier)."""
        if len(features) != len(self.config.in_channels):
            raise ValueError(f"UperNetHead: expected {len(self.config.in_channels)} feature maps, got {len(features)}")
        laterals = [conv(feat) for conv, feat in zip(self.lateral_convs, features[:-1], strict=True)]
        laterals.append(self.psp_forward(features[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals[:-1], strict=True)]
        outs.append(laterals[-1])
        outs = [outs[0]] + [resize(out, outs[0].shape[2:]) for out in outs[1:]]
        return self.fpn_bottleneck(torch.cat(outs, dim=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.last_feature(features))
