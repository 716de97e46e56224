"""Heads of ClearSCD: semantic head (``head_seg``), deep CVAPS change head (``head_bcd``), projection head."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChangeDetectionHead", "ProjectionHead", "SegmentationHead"]


class SegmentationHead(nn.Sequential):
    """smp ``SegmentationHead``: 3×3 conv (bias) → optional align-corners bilinear ×``upsampling``; no activation.

    B×128×h×w → B×num_classes×(h·u)×(w·u). Key ``head_seg.0.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, upsampling: int = 1) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        up = nn.UpsamplingBilinear2d(scale_factor=upsampling) if upsampling > 1 else nn.Identity()
        super().__init__(conv, up, nn.Identity())


class ChangeDetectionHead(nn.Module):
    """Deep CVAPS: ``num_convs`` × [3×3 conv, BN, ReLU] then a 3×3 conv to one change logit, then bilinear ×u.

    Receives the already fused semantic logits: |L_A − L_B| (fusion "diff", C = num_segclass channels) or their
    concatenation (fusion "concat", 2·C). ``forward(x, with_bscc)`` → (bcd_low B×1×h×w, BCD B×1×(h·u)×(w·u));
    with ``with_bscc`` false the first entry is a 0-d zero tensor (as the original).
    """

    def __init__(self, num_segclass: int = 9, num_convs: int = 3, upsampling: int = 4, fusion: str = "diff") -> None:
        super().__init__()
        channels = num_segclass if fusion == "diff" else 2 * num_segclass
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for _ in range(num_convs)
        ]
        layers.append(nn.Conv2d(channels, 1, 3, 1, 1))
        self.in_channels = channels
        self.convs = nn.Sequential(*layers)
        self.upsampling = nn.UpsamplingBilinear2d(scale_factor=upsampling) if upsampling > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, with_bscc: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ChangeDetectionHead: x must be B×{self.in_channels}×h×w, got {tuple(x.shape)}")
        low = self.convs(x)
        up = self.upsampling(low)
        if not with_bscc:
            return torch.zeros((), device=x.device, dtype=x.dtype), up
        return low, up


class ProjectionHead(nn.Module):
    """SACL projection: [1×1 conv C→hidden, BN, ReLU, 1×1 conv hidden→C]; B×C×h×w → B×C×h×w.

    ``hidden_channels`` (32 in the original, where the argument was confusingly called ``proj_dim``) is the
    bottleneck width; the output keeps ``in_channels`` (128), which is the config's ``proj_dim`` (queue width).
    """

    def __init__(self, in_channels: int = 128, hidden_channels: int = 32) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size=1),
            nn.BatchNorm2d(hidden_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, in_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
