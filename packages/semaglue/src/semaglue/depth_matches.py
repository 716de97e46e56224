"""Ground-truth matches from depth maps and relative pose (stage 2, MegaDepth): reprojection with a
depth-consistency check.

A keypoint of image A is *visible* in image B when its depth is known (> 0), its reprojection lands inside B, and
B's depth there agrees with the reprojected depth within a relative tolerance (otherwise it is occluded).
Keypoints are ``B×K×2`` pixel ``(x, y)``; depths ``B×H×W`` (0 = unknown); K 3×3; ``T_0to1`` 4×4.
"""

from __future__ import annotations

import torch


def sample_depth(depth: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-pixel depth ``B×K`` at ``B×K×2`` points, and whether the point is inside the map (``B×K``)."""
    b, h, w = depth.shape
    xi, yi = points[..., 0].round(), points[..., 1].round()
    inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1) & torch.isfinite(points).all(-1)
    index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).nan_to_num(0).long()
    values = torch.gather(depth.reshape(b, -1), 1, index)
    return torch.where(inside, values, torch.zeros_like(values)), inside


def project(
    points: torch.Tensor,
    depth_a: torch.Tensor,
    depth_b: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    T_a2b: torch.Tensor,
    consistency: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reproject ``B×K×2`` points of A into B. Returns the pixels in B ``B×K×2``, ``known`` (A's depth > 0) and
    ``visible`` (known, inside B, in front of B's camera and ``|d_B - z| / z < consistency``), both ``B×K``."""
    z, _ = sample_depth(depth_a, points)
    known = z > 0
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], -1)
    rays = homogeneous @ torch.linalg.inv(K_a).transpose(-1, -2)
    xyz = rays * z[..., None]
    xyz_b = xyz @ T_a2b[:, :3, :3].transpose(-1, -2) + T_a2b[:, None, :3, 3]
    z_b = xyz_b[..., 2]
    pixels = (xyz_b / z_b.clamp_min(1e-9)[..., None]) @ K_b.transpose(-1, -2)
    pixels = pixels[..., :2]
    d_b, inside = sample_depth(depth_b, pixels)
    consistent = (d_b > 0) & ((d_b - z_b).abs() < consistency * z_b)
    return pixels, known, known & inside & (z_b > 0) & consistent


def gt_matches_from_depth(
    kpts0: torch.Tensor,
    kpts1: torch.Tensor,
    depth0: torch.Tensor,
    depth1: torch.Tensor,
    K0: torch.Tensor,
    K1: torch.Tensor,
    T_0to1: torch.Tensor,
    pos_th: float = 3.0,
    neg_th: float = 5.0,
    consistency: float = 0.1,
    mask0: torch.Tensor | None = None,
    mask1: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth assignment (``gt_matches0`` ``B×M``, ``gt_matches1`` ``B×N``, int64).

    Positive: both keypoints visible in the other image, mutual nearest neighbours of the symmetric reprojection
    error, error < ``pos_th`` px. Unmatched (``-1``): known depth but not visible (outside, behind, occluded), or
    every keypoint of the other image farther than ``neg_th`` px from the reprojection. Ignored (``-2``): unknown
    depth, the ambiguous rest, and padding (``mask`` False).
    """
    f64 = torch.float64
    k0, k1 = kpts0.to(f64), kpts1.to(f64)
    d0, d1, K0, K1, T = depth0.to(f64), depth1.to(f64), K0.to(f64), K1.to(f64), T_0to1.to(f64)
    w0, known0, vis0 = project(k0, d0, d1, K0, K1, T, consistency)
    w1, known1, vis1 = project(k1, d1, d0, K1, K0, torch.linalg.inv(T), consistency)
    if mask0 is None:
        mask0 = torch.ones(k0.shape[:2], dtype=torch.bool, device=k0.device)
    if mask1 is None:
        mask1 = torch.ones(k1.shape[:2], dtype=torch.bool, device=k1.device)
    inf = torch.tensor(float("inf"), dtype=f64, device=k0.device)
    e0 = torch.where(vis0[..., None] & mask1[:, None], torch.cdist(w0, k1), inf)  # B×M×N, projection of 0 vs kpts1
    e1 = torch.where(vis1[:, None] & mask0[..., None], torch.cdist(k0, w1), inf)
    dist = torch.maximum(e0, e1)
    min0, arg0 = dist.min(2)
    arg1 = dist.argmin(1)
    mutual0 = torch.gather(arg1, 1, arg0) == torch.arange(dist.shape[1], device=dist.device)
    positive0 = mutual0 & (min0 < pos_th) & mask0
    minus1, minus2 = torch.full_like(arg0, -1), torch.full_like(arg0, -2)
    far0 = e0.min(2).values > neg_th
    gt0 = torch.where(positive0, arg0, torch.where(known0 & (~vis0 | far0), minus1, minus2))
    gt1 = torch.full_like(arg1, -2)
    b, m = torch.nonzero(positive0, as_tuple=True)
    gt1[b, arg0[b, m]] = m
    positive1 = gt1 >= 0
    far1 = e1.min(1).values > neg_th
    gt1 = torch.where(positive1, gt1, torch.where(known1 & (~vis1 | far1), torch.full_like(gt1, -1), gt1))
    return torch.where(mask0, gt0, minus2), torch.where(mask1, gt1, torch.full_like(gt1, -2))
