"""Homography geometry: ground-truth matches of keypoints under a known homography and the homography protocol
(HPatches-style corner error of the estimated homography, AUC@1/3/5 px; match precision and recall).

Keypoints are ``N×2`` pixel ``(x, y)``; ``H_0to1`` 3×3 maps image-0 pixels to image-1 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from semcommon.metrics import pose_auc

HOMOGRAPHY_THRESHOLDS: tuple[float, ...] = (1.0, 3.0, 5.0)
CORRECT_PX = 3.0  # a match is correct when its reprojection error is below this (pixels)


def warp_points(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    """``N×2`` points through a 3×3 homography (points at infinity map to inf)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homogeneous = np.c_[points, np.ones(len(points))] @ np.asarray(H, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return homogeneous[:, :2] / homogeneous[:, 2:]


def gt_matches_from_homography(
    kpts0: torch.Tensor,
    kpts1: torch.Tensor,
    H_0to1: torch.Tensor,
    size0: tuple[int, int],
    size1: tuple[int, int],
    pos_th: float = 3.0,
    neg_th: float = 5.0,
    mask0: torch.Tensor | None = None,
    mask1: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth assignment of ``B×M×2`` / ``B×N×2`` keypoints under ``B×3×3`` homographies.

    Positive: mutual nearest neighbours with symmetric reprojection error < ``pos_th`` px. Unmatched (``-1``): no
    keypoint of the other image within ``neg_th`` px, or reprojected outside the other image. Ignored (``-2``):
    the ambiguous rest and padded keypoints (``mask`` False). ``size0/1`` are ``(H, W)``.
    Returns ``gt_matches0`` ``B×M`` and ``gt_matches1`` ``B×N`` (int64).
    """
    H = H_0to1.to(torch.float64)
    k0, k1 = kpts0.to(torch.float64), kpts1.to(torch.float64)
    p0 = torch.cat([k0, torch.ones_like(k0[..., :1])], -1) @ H.transpose(-1, -2)
    p1 = torch.cat([k1, torch.ones_like(k1[..., :1])], -1) @ torch.linalg.inv(H).transpose(-1, -2)
    w0 = p0[..., :2] / p0[..., 2:].clamp_min(1e-9)
    w1 = p1[..., :2] / p1[..., 2:].clamp_min(1e-9)
    dist = torch.maximum(torch.cdist(w0, k1), torch.cdist(k0, w1))  # B×M×N
    if mask0 is not None:
        dist = dist.masked_fill(~mask0[..., None], float("inf"))
    if mask1 is not None:
        dist = dist.masked_fill(~mask1[:, None], float("inf"))
    min0, arg0 = dist.min(2)
    min1, arg1 = dist.min(1)
    mutual0 = torch.gather(arg1, 1, arg0) == torch.arange(dist.shape[1], device=dist.device)
    positive0 = mutual0 & (min0 < pos_th)
    gt0 = torch.where(positive0, arg0, torch.full_like(arg0, -2))
    outside0 = _outside(w0, size1) | (p0[..., 2] <= 0)
    outside1 = _outside(w1, size0) | (p1[..., 2] <= 0)
    gt0 = torch.where(~positive0 & ((min0 > neg_th) | outside0), torch.full_like(gt0, -1), gt0)
    positive1 = torch.zeros_like(min1, dtype=torch.bool)
    gt1 = torch.full_like(arg1, -2)
    b, m = torch.nonzero(positive0, as_tuple=True)
    gt1[b, arg0[b, m]] = m
    positive1[b, arg0[b, m]] = True
    gt1 = torch.where(~positive1 & ((min1 > neg_th) | outside1), torch.full_like(gt1, -1), gt1)
    if mask0 is not None:
        gt0 = torch.where(mask0, gt0, torch.full_like(gt0, -2))
    if mask1 is not None:
        gt1 = torch.where(mask1, gt1, torch.full_like(gt1, -2))
    return gt0, gt1


def _outside(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    x, y = points[..., 0], points[..., 1]
    return ~((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)) | ~torch.isfinite(points).all(-1)


def estimate_homography(mkpts0: np.ndarray, mkpts1: np.ndarray, ransac_th: float = 3.0) -> np.ndarray | None:
    """OpenCV RANSAC homography (``ransac_th`` px, 10000 iterations, confidence 0.9999); None below 4 matches."""
    if len(mkpts0) < 4:
        return None
    H, _ = cv2.findHomography(
        np.asarray(mkpts0, np.float64),
        np.asarray(mkpts1, np.float64),
        cv2.RANSAC,
        ransac_th,
        maxIters=10000,
        confidence=0.9999,
    )
    return H


def corner_error(H_est: np.ndarray | None, H_gt: np.ndarray, size: tuple[int, int]) -> float:
    """Mean distance (px) of image 0's four corners warped by the estimate and by the ground truth (inf: no
    estimate). ``size`` = ``(H, W)`` of image 0."""
    if H_est is None:
        return float("inf")
    h, w = size
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    error = np.linalg.norm(warp_points(corners, H_est) - warp_points(corners, H_gt), axis=1).mean()
    return float(error) if np.isfinite(error) else float("inf")


def match_precision_recall(
    mkpts0: np.ndarray, mkpts1: np.ndarray, H_gt: np.ndarray, num_gt: int, threshold: float = CORRECT_PX
) -> tuple[float, float, int]:
    """``(precision, recall, num_correct)``: a match is correct when ``|H(p0) - p1| < threshold``; recall divides
    by the number of ground-truth matches ``num_gt`` (precision 0 without matches, recall 0 without GT)."""
    if len(mkpts0) == 0:
        return 0.0, 0.0, 0
    error = np.linalg.norm(warp_points(mkpts0, H_gt) - np.asarray(mkpts1, np.float64), axis=1)
    correct = int(np.sum(error < threshold))
    return correct / len(mkpts0), (min(correct / num_gt, 1.0) if num_gt else 0.0), correct


def homography_auc(errors: Sequence[float], thresholds: Sequence[float] = HOMOGRAPHY_THRESHOLDS) -> dict[str, float]:
    """``{"H_AUC@1px": ...}`` in percent: area under the cumulative corner-error curve (the pose-AUC formula)."""
    aucs = pose_auc(np.asarray(errors, dtype=np.float64), thresholds)
    return {f"H_AUC@{t:g}px": 100.0 * a for t, a in zip(thresholds, aucs, strict=True)}
