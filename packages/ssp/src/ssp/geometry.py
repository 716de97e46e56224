"""Warps: homography warping with kornia's ``warp_perspective`` convention, and the original flow warp.

- :func:`warp_perspective`: output pixel p samples the source at ``H^-1 p`` (align_corners=True pixel grid,
  bilinear, zeros outside), composed in normalised coordinates exactly as kornia 0.8 does (float32 numerics).
- :func:`flow_warp`: samples at ``p + flow(p)`` normalised with ``max(W-1, 1)`` but sampled with
  ``align_corners=False`` — the half-pixel inconsistency of the original ``flowwarp`` (spec pitfall 1/2), nearest by
  default. Used by the consistency loss, the KD label consistency and the TC metric.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["flow_from_homography", "flow_warp", "scale_homography", "warp_perspective"]


def _normal_transform_pixel(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """3×3 map from pixel coordinates (0..W-1) to [-1, 1] (kornia ``normal_transform_pixel``)."""
    matrix = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    matrix[0, 0] = matrix[0, 0] * 2.0 / (1e-14 if width == 1 else width - 1.0)
    matrix[1, 1] = matrix[1, 1] * 2.0 / (1e-14 if height == 1 else height - 1.0)
    return matrix.unsqueeze(0)


def _inverse(matrix: torch.Tensor) -> torch.Tensor:
    if matrix.dtype not in (torch.float32, torch.float64):
        return torch.linalg.inv(matrix.float()).to(matrix.dtype)
    return torch.linalg.inv(matrix)


def warp_perspective(
    src: torch.Tensor, homography: torch.Tensor, dsize: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """Warp ``src`` (``B×C×H×W``) with ``homography`` (``B×3×3``, source pixels -> destination pixels).

    Returns ``B×C×dsize[0]×dsize[1]``; zeros where the source is not seen.
    """
    if src.dim() != 4:
        raise ValueError(f"warp_perspective: src must be B×C×H×W, got {tuple(src.shape)}")
    if homography.dim() != 3 or homography.shape[-2:] != (3, 3) or homography.shape[0] != src.shape[0]:
        raise ValueError(
            f"warp_perspective: homography must be B×3×3 with B={src.shape[0]}, got {tuple(homography.shape)}"
        )
    if not torch.isfinite(homography).all():
        raise ValueError("warp_perspective: homography contains NaN or infinite values")
    height, width = src.shape[-2:]
    out_h, out_w = int(dsize[0]), int(dsize[1])
    homography = homography.to(src.dtype)
    src_norm_from_pix = _normal_transform_pixel(height, width, homography.dtype, homography.device)
    dst_norm_from_pix = _normal_transform_pixel(out_h, out_w, homography.dtype, homography.device)
    dst_norm_from_src_norm = dst_norm_from_pix @ (homography @ _inverse(src_norm_from_pix))
    src_norm_from_dst_norm = _inverse(dst_norm_from_src_norm)
    xs = (torch.linspace(0, out_w - 1, out_w, device=src.device, dtype=src.dtype) / (out_w - 1) - 0.5) * 2
    ys = (torch.linspace(0, out_h - 1, out_h, device=src.device, dtype=src.dtype) / (out_h - 1) - 0.5) * 2
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), dim=-1).permute(1, 0, 2)  # H×W×2 (x, y)
    points = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1).reshape(1, -1, 3)
    mapped = torch.bmm(points.expand(src.shape[0], -1, -1), src_norm_from_dst_norm.transpose(1, 2))
    z = mapped[..., 2:]
    scale = torch.where(z.abs() > 1e-8, 1.0 / (z + 1e-8), torch.ones_like(z))
    sample_grid = (scale * mapped[..., :2]).reshape(src.shape[0], out_h, out_w, 2)
    return F.grid_sample(src, sample_grid, mode=mode, padding_mode="zeros", align_corners=True)


def scale_homography(homography: torch.Tensor, factor: float) -> torch.Tensor:
    """Homography for images scaled by ``factor``: ``diag(f, f, 1) @ H @ diag(1/f, 1/f, 1)`` (``B×3×3``).

    ``factor=0.25`` gives the stride-4 feature homography ``diag(1/4,1/4,1) H diag(4,4,1)``.
    """
    down = torch.diag(torch.tensor([factor, factor, 1.0], dtype=homography.dtype, device=homography.device))
    up = torch.diag(torch.tensor([1.0 / factor, 1.0 / factor, 1.0], dtype=homography.dtype, device=homography.device))
    return down @ homography @ up


def flow_warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Sample ``x`` (``B×C×H×W``) at ``p + flow(p)`` (``flow`` ``B×2×H×W``, channel 0 = x), zeros outside.

    Reproduces the original grid convention: normalisation by ``max(W-1, 1)``, sampling with
    ``align_corners=False`` (half a pixel off; required for loss and TC parity).
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow_warp: expected x B×C×H×W and flow B×2×H×W, got {tuple(x.shape)}, {tuple(flow.shape)}")
    if flow.shape[0] != x.shape[0] or flow.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"flow_warp: flow {tuple(flow.shape)} does not match x {tuple(x.shape)}")
    batch, _, height, width = x.shape
    xx = torch.arange(width, device=x.device).view(1, 1, 1, width).expand(batch, 1, height, width)
    yy = torch.arange(height, device=x.device).view(1, 1, height, 1).expand(batch, 1, height, width)
    grid = torch.cat([xx, yy], dim=1).float() + flow
    gx = 2.0 * grid[:, 0] / max(width - 1, 1) - 1.0
    gy = 2.0 * grid[:, 1] / max(height - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack([gx, gy], dim=-1), mode=mode, align_corners=False)


def flow_from_homography(homography: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Optical flow ``B×2×H×W`` (x, y) of homographies ``B×3×3``: ``f(p) = H(p) - p`` for every pixel of a ``size``
    image (the exact flow of a camera motion over a planar scene; used for synthetic data instead of RAFT)."""
    height, width = size
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64, device=homography.device),
        torch.arange(width, dtype=torch.float64, device=homography.device),
        indexing="ij",
    )
    points = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)
    mapped = homography.double() @ points
    mapped = mapped[:, :2] / mapped[:, 2:]
    return (mapped - points[:2]).reshape(homography.shape[0], 2, height, width).float()
