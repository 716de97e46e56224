"""UperNet head (pyramid pooling + FPN) with the naming of Hugging Face's ``UperNetHead``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssp.config import UperNetConfig

__all__ = ["ConvModule", "PyramidPoolingModule", "UperNetHead"]


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize, ``align_corners=False`` (every resize inside the head)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvModule(nn.Sequential):
    """``conv`` (no bias) -> ``batch_norm`` -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()


class PyramidPoolingModule(nn.ModuleList):
    """For each pool scale s: ``{i}.0`` AdaptiveAvgPool(s), ``{i}.1`` 1×1 ConvModule; each resized back to the input."""

    def __init__(self, pool_scales: tuple[int, ...], in_channels: int, channels: int) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvModule(in_channels, channels, 1)) for scale in pool_scales
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
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
