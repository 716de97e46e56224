"""RAFT all-pairs correlation pyramid and windowed lookup (PyTorch reference implementation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def corr_pyramid(fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4) -> list[torch.Tensor]:
    """All-pairs correlation ``<f1(p), f2(q)> / sqrt(C)`` and its average-pooled pyramid.

    Args:
        fmap1, fmap2: ``B×C×H×W`` feature maps.
    Returns:
        ``num_levels`` tensors of shape ``(B·H·W)×1×(H/2^l)×(W/2^l)``: for every pixel of ``fmap1`` its
        correlation with all of ``fmap2``, pooled by 2 per level.
    """
    if fmap1.shape != fmap2.shape or fmap1.dim() != 4:
        raise ValueError(
            f"corr_pyramid: expected two equal B×C×H×W maps, got {tuple(fmap1.shape)}, {tuple(fmap2.shape)}"
        )
    batch, channels, height, width = fmap1.shape
    corr = torch.matmul(fmap1.flatten(2).transpose(1, 2), fmap2.flatten(2)) / channels**0.5
    level = corr.reshape(batch * height * width, 1, height, width)
    pyramid = [level]
    for _ in range(num_levels - 1):
        level = F.avg_pool2d(level, 2, stride=2)
        pyramid.append(level)
    return pyramid


def corr_lookup(pyramid: list[torch.Tensor], coords: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Sample a ``(2r+1)²`` window around ``coords / 2^l`` in every pyramid level.

    Args:
        pyramid: output of :func:`corr_pyramid`.
        coords: ``B×2×H×W`` pixel coordinates ``(x, y)`` in ``fmap2`` for every pixel of ``fmap1``.
    Returns:
        ``B×(L·(2r+1)²)×H×W``. Within a level, channel ``i·(2r+1) + j`` holds the offset ``(dx, dy) = (i - r, j - r)``
        (RAFT's ordering). Bilinear sampling with zero padding, ``align_corners=True``.
    """
    batch, _, height, width = coords.shape
    side = 2 * radius + 1
    offsets = torch.linspace(-radius, radius, side, device=coords.device, dtype=coords.dtype)
    delta = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)  # side×side×2, [..., 0] = x offset
    centres = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
    samples = []
    for level_index, corr in enumerate(pyramid):
        points = centres / 2**level_index + delta.view(1, side, side, 2)
        level_h, level_w = corr.shape[-2:]
        grid = torch.stack((2 * points[..., 0] / (level_w - 1) - 1, 2 * points[..., 1] / (level_h - 1) - 1), dim=-1)
        sampled = F.grid_sample(corr, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        samples.append(sampled.view(batch, height, width, side * side))
    return torch.cat(samples, dim=-1).permute(0, 3, 1, 2).contiguous()
