"""Evaluation metrics of the YFCC protocol: epipolar error, precision, matching score, pose errors, pose AUC."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semcommon.metrics import pose_auc

EPIPOLAR_THRESHOLD = 5e-4  # squared symmetric epipolar distance in normalised coordinates
AUC_THRESHOLDS = (5, 10, 20)


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def compute_epipolar_error(
    kpts0: np.ndarray, kpts1: np.ndarray, T_0to1: np.ndarray, K0: np.ndarray, K1: np.ndarray
) -> np.ndarray:
    """Squared symmetric epipolar distance (normalised coordinates) of each match ``N×2``/``N×2`` -> ``N``."""
    kpts0, kpts1 = np.asarray(kpts0, dtype=np.float64), np.asarray(kpts1, dtype=np.float64)
    if kpts0.shape != kpts1.shape or kpts0.ndim != 2 or kpts0.shape[1] != 2:
        raise ValueError(f"kpts0/kpts1 must both be N×2, got {kpts0.shape} and {kpts1.shape}")
    p0 = (kpts0 - K0[[0, 1], [2, 2]][None]) / K0[[0, 1], [0, 1]][None]
    p1 = (kpts1 - K1[[0, 1], [2, 2]][None]) / K1[[0, 1], [0, 1]][None]
    p0 = np.concatenate([p0, np.ones_like(p0[:, :1])], -1)
    p1 = np.concatenate([p1, np.ones_like(p1[:, :1])], -1)
    E = _skew(T_0to1[:3, 3]) @ T_0to1[:3, :3]
    Ep0 = p0 @ E.T
    p1Ep0 = np.sum(p1 * Ep0, -1)
    Etp1 = p1 @ E
    return p1Ep0**2 * (1.0 / (Ep0[:, 0] ** 2 + Ep0[:, 1] ** 2) + 1.0 / (Etp1[:, 0] ** 2 + Etp1[:, 1] ** 2))


def precision(correct: np.ndarray) -> float:
    """Fraction of correct matches (0 when there are no matches)."""
    correct = np.asarray(correct)
    return float(np.mean(correct)) if len(correct) > 0 else 0.0


def matching_score(correct: np.ndarray, num_keypoints0: int) -> float:
    """Correct matches over all keypoints detected in image 0 (0 when there are none)."""
    return float(np.sum(correct)) / num_keypoints0 if num_keypoints0 > 0 else 0.0


def angle_error_mat(R1: np.ndarray, R2: np.ndarray) -> float:
    """Rotation angle (degrees) of ``R1ᵀ R2``."""
    cos = np.clip((np.trace(np.dot(R1.T, R2)) - 1) / 2, -1.0, 1.0)
    return float(np.rad2deg(np.abs(np.arccos(cos))))


def angle_error_vec(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle (degrees) between two vectors."""
    n = np.linalg.norm(v1) * np.linalg.norm(v2)
    return float(np.rad2deg(np.arccos(np.clip(np.dot(v1, v2) / n, -1.0, 1.0))))


def compute_pose_error(T_0to1: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """``(error_t, error_R)`` in degrees; the translation error ignores the sign of ``t`` (min(e, 180 - e))."""
    error_t = angle_error_vec(np.asarray(t), T_0to1[:3, 3])
    error_t = min(error_t, 180.0 - error_t)
    return error_t, angle_error_mat(np.asarray(R), T_0to1[:3, :3])


def aggregate_results(
    error_t: Sequence[float],
    error_R: Sequence[float],
    precisions: Sequence[float],
    matching_scores: Sequence[float],
    thresholds: Sequence[float] = AUC_THRESHOLDS,
) -> dict[str, float]:
    """The printed table (percent): ``AUC@5, AUC@10, AUC@20`` of ``max(error_t, error_R)``, mean ``Prec``, ``MScore``."""
    pose_errors = np.maximum(np.asarray(error_t, dtype=np.float64), np.asarray(error_R, dtype=np.float64))
    aucs = pose_auc(pose_errors, thresholds)
    table = {f"AUC@{t:g}": 100.0 * a for t, a in zip(thresholds, aucs, strict=True)}
    table["Prec"] = 100.0 * float(np.mean(precisions))
    table["MScore"] = 100.0 * float(np.mean(matching_scores))
    return table


def format_table(table: dict[str, float], num_pairs: int) -> str:
    """The authors' printout: header line, tab-separated names and values with 2 decimals."""
    names = list(table)
    lines = [
        f"Evaluation Results (mean over {num_pairs} pairs):",
        "\t".join(names),
        "\t".join(f"{table[k]:.2f}" for k in names),
    ]
    return "\n".join(lines)
