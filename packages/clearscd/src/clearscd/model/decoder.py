"""FPN decoder with the semantics and parameter names of segmentation-models-pytorch 0.3 ``FPNDecoder``
(encoder depth 5, pyramid 256, segmentation 128, merge "add", Dropout2d 0.2).

Top-down path: nearest ×2 + 1×1 skip convs; each pyramid level then goes through ``[3×3 conv, GroupNorm(32), ReLU]``
units, each followed by an align-corners bilinear ×2 while the level is coarser than 1/4; the four 1/4-resolution
maps are summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Conv3x3GNReLU", "FPNBlock", "FPNDecoder", "SegmentationBlock"]


class Conv3x3GNReLU(nn.Module):
    """``block = [conv3×3 (no bias), GroupNorm(32), ReLU]``, then bilinear ×2 (align_corners) if ``upsample``."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False),
            nn.GroupNorm(32, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return x


class FPNBlock(nn.Module):
    """P_k = nearest×2(P_{k+1}) + skip_conv(f_k) (1×1 conv with bias)."""

    def __init__(self, pyramid_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, pyramid_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x + self.skip_conv(skip)


class SegmentationBlock(nn.Module):
    """``n_upsamples`` Conv3x3GNReLU units (at least one), each upsampling ×2 when ``n_upsamples`` > 0."""

    def __init__(self, in_channels: int, out_channels: int, n_upsamples: int = 0) -> None:
        super().__init__()
        units = [Conv3x3GNReLU(in_channels, out_channels, upsample=bool(n_upsamples))]
        units += [Conv3x3GNReLU(out_channels, out_channels, upsample=True) for _ in range(1, n_upsamples)]
        self.block = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FPNDecoder(nn.Module):
    """smp 0.3 FPN decoder. ``forward(*features)`` uses f2..f5 (B×24×H/4 … B×320×H/32) → B×128×H/4×W/4."""

    def __init__(
        self,
        encoder_channels: tuple[int, ...] = (3, 32, 24, 40, 112, 320),
        pyramid_channels: int = 256,
        segmentation_channels: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        c2, c3, c4, c5 = encoder_channels[-4:]
        self.p5 = nn.Conv2d(c5, pyramid_channels, kernel_size=1)
        self.p4 = FPNBlock(pyramid_channels, c4)
        self.p3 = FPNBlock(pyramid_channels, c3)
        self.p2 = FPNBlock(pyramid_channels, c2)
        self.seg_blocks = nn.ModuleList(
            SegmentationBlock(pyramid_channels, segmentation_channels, n_upsamples=n) for n in (3, 2, 1, 0)
        )
        self.dropout = nn.Dropout2d(p=dropout, inplace=True)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        c2, c3, c4, c5 = features[-4:]
        p5 = self.p5(c5)
        p4 = self.p4(p5, c4)
        p3 = self.p3(p4, c3)
        p2 = self.p2(p3, c2)
        x = sum(block(p) for block, p in zip(self.seg_blocks, (p5, p4, p3, p2), strict=True))
        return self.dropout(x)
