"""Similarity blocks: per-pixel weight s in [0, 1] of the warped previous prediction.

Every block maps ``(last_featmap_warped, featmap)`` (``B×E×h×w`` each) and an output ``size`` to ``B×1×H×W``;
the fused prediction is ``s * last_out_warped + (1 - s) * out``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConstantSimBlock", "ConvSimBlock", "CosSimBlock", "build_sim_block"]


def _resize(sim: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(sim.shape[-2:]) == tuple(size):
        return sim
    return F.interpolate(sim, size=tuple(size), mode="bilinear", align_corners=False)


def _check_pair(last_featmap_warped: torch.Tensor, featmap: torch.Tensor) -> None:
    if last_featmap_warped.shape != featmap.shape or featmap.dim() != 4:
        raise ValueError(
            "similarity: last_featmap_warped and featmap must be equal B×E×h×w maps, got "
            f"{tuple(last_featmap_warped.shape)} and {tuple(featmap.shape)}"
        )


class ConvSimBlock(nn.Module):
    """SSP's learned similarity (``sim_op: conv``).

    ``conv``: Conv3×3(2E->E), BN, ReLU, Conv3×3(E->E/2), BN, ReLU, Conv1×1(E/2->1); sigmoid at feature
    resolution, then a bilinear resize of the (0, 1) map to ``size``.
    """

    def __init__(self, embed_dim: int = 96) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.conv = nn.Sequential(
            nn.Conv2d(2 * embed_dim, embed_dim, 3, padding=1),
            nn.BatchNorm2d(embed_dim),
            nn.ReLU(),
            nn.Conv2d(embed_dim, embed_dim // 2, 3, padding=1),
            nn.BatchNorm2d(embed_dim // 2),
            nn.ReLU(),
            nn.Conv2d(embed_dim // 2, 1, 1),
        )

    def forward(self, last_featmap_warped: torch.Tensor, featmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        _check_pair(last_featmap_warped, featmap)
        if featmap.shape[1] != self.embed_dim:
            raise ValueError(f"ConvSimBlock: expected {self.embed_dim} feature channels, got {featmap.shape[1]}")
        sim = torch.sigmoid(self.conv(torch.cat([last_featmap_warped, featmap], dim=1)))
        return _resize(sim, size)


class CosSimBlock(nn.Module):
    """Ablation ``sim_op: cossim``: ``min(clamp(cos(featmap, last_warped), 0, 1)^4, 0.95)``, no weights."""

    def forward(self, last_featmap_warped: torch.Tensor, featmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        _check_pair(last_featmap_warped, featmap)
        sim = F.cosine_similarity(featmap, last_featmap_warped, dim=1, eps=1e-8).unsqueeze(1)
        sim = sim.clamp(0.0, 1.0).pow(4).clamp(max=0.95)
        return _resize(sim, size)


class ConstantSimBlock(nn.Module):
    """Ablations ``constant`` (alpha 0: current prediction only) and ``reuse`` (alpha 1: warped previous only)."""

    def __init__(self, alpha: float = 0.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, last_featmap_warped: torch.Tensor, featmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return torch.full(
            (featmap.shape[0], 1, int(size[0]), int(size[1])), self.alpha, dtype=torch.float32, device=featmap.device
        )


def build_sim_block(sim_op: str, embed_dim: int) -> nn.Module:
    """The block named by ``video_model_cfg.sim_op``."""
    if sim_op == "conv":
        return ConvSimBlock(embed_dim)
    if sim_op == "cossim":
        return CosSimBlock()
    if sim_op == "constant":
        return ConstantSimBlock(0.0)
    if sim_op == "reuse":
        return ConstantSimBlock(1.0)
    raise ValueError(f"sim_op: expected conv | cossim | constant | reuse, got {sim_op!r}")
