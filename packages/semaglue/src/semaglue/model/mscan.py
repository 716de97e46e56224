"""MSCAN (SegNeXt's multi-scale convolutional attention encoder); parameter names of the mmseg checkpoint.

Shapes for MSCAN-Tiny on a ``B×3×H×W`` input: stage s (1..4) outputs ``B×C_s×H/2^(s+1)×W/2^(s+1)`` (ceil division
at every stride-2 convolution) with ``C = (32, 64, 160, 256)``.
"""

from __future__ import annotations

import torch
from torch import nn

from semaglue.config import SegNextConfig
from semaglue.model.layers import Impl


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (identity in eval mode)."""

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class StemConv(nn.Module):
    """Stage-1 embedding: two stride-2 3x3 convs with BN (+GELU between): ``B×3×H×W`` -> ``B×C×H/4×W/4``."""

    def __init__(self, in_channels: int, out_channels: int, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, 3, 2, 1),
            nn.BatchNorm2d(out_channels // 2, eps=bn_eps),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, 2, 1),
            nn.BatchNorm2d(out_channels, eps=bn_eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class OverlapPatchEmbed(nn.Module):
    """Stages 2-4 embedding: stride-2 3x3 conv + BN: ``B×C_in×H×W`` -> ``B×C×ceil(H/2)×ceil(W/2)``."""

    def __init__(self, in_channels: int, embed_dim: int, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(embed_dim, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


def _depthwise(dim: int, kernel: tuple[int, int]) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, kernel, padding=(kernel[0] // 2, kernel[1] // 2), groups=dim)


class AttentionModule(nn.Module):
    """Multi-scale convolutional attention: dw 5x5 + three strip-conv branches (7, 11, 21), 1x1 mix, times input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = _depthwise(dim, (5, 5))
        self.conv0_1, self.conv0_2 = _depthwise(dim, (1, 7)), _depthwise(dim, (7, 1))
        self.conv1_1, self.conv1_2 = _depthwise(dim, (1, 11)), _depthwise(dim, (11, 1))
        self.conv2_1, self.conv2_2 = _depthwise(dim, (1, 21)), _depthwise(dim, (21, 1))
        self.conv3 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.conv0(x)
        branches = (
            self.conv0_2(self.conv0_1(attn)),
            self.conv1_2(self.conv1_1(attn)),
            self.conv2_2(self.conv2_1(attn)),
        )
        attn = attn + branches[0] + branches[1] + branches[2]
        return self.conv3(attn) * x


class SpatialAttention(nn.Module):
    """1x1 conv, GELU, multi-scale attention, 1x1 conv, plus the module's own shortcut."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = AttentionModule(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class DWConv(nn.Module):
    """Depthwise 3x3 convolution (kept as a module for the ``dwconv.dwconv`` key)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class Mlp(nn.Module):
    """Convolutional FFN: 1x1 expand, dw 3x3, GELU, dropout, 1x1 project, dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class Block(nn.Module):
    """MSCA block on ``B×C×H×W``: ``x + ls1·attn(BN(x))`` then ``x + ls2·mlp(BN(x))``."""

    def __init__(
        self, dim: int, mlp_ratio: int, drop: float = 0.0, drop_path: float = 0.0, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.layer_scale_1 = nn.Parameter(1e-2 * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(1e-2 * torch.ones(dim))
        self.norm1 = nn.BatchNorm2d(dim, eps=bn_eps)
        self.attn = SpatialAttention(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim, eps=bn_eps)
        self.mlp = Mlp(dim, dim * mlp_ratio, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class MSCAN(nn.Module):
    """Four-stage MSCAN encoder; ``forward`` returns the four stage outputs ``[B×C_s×H_s×W_s]``."""

    def __init__(self, config: SegNextConfig | None = None) -> None:
        super().__init__()
        cfg = config or SegNextConfig()
        if not len(cfg.embed_dims) == len(cfg.mlp_ratios) == len(cfg.depths):
            raise ValueError("embed_dims, mlp_ratios and depths must have the same length")
        self.num_stages = len(cfg.depths)
        rates = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        start = 0
        for i, (dim, ratio, depth) in enumerate(zip(cfg.embed_dims, cfg.mlp_ratios, cfg.depths, strict=True)):
            if i == 0:
                embed: nn.Module = StemConv(cfg.in_channels, dim, cfg.bn_eps)
            else:
                embed = OverlapPatchEmbed(cfg.embed_dims[i - 1], dim, cfg.bn_eps)
            blocks = nn.ModuleList(Block(dim, ratio, cfg.drop_rate, rates[start + j], cfg.bn_eps) for j in range(depth))
            start += depth
            setattr(self, f"patch_embed{i + 1}", embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dim))
        self.impl: Impl = "fast"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(1, self.num_stages + 1):
            if self.impl == "fast":  # channels-last: oneDNN's depthwise strip convolutions are several times faster
                x = x.contiguous(memory_format=torch.channels_last)
            x = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"block{i}"):
                x = block(x)
            x = getattr(self, f"norm{i}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs
