"""Metrics shared by the packages: segmentation (confusion matrix), disparity, depth and relative pose.

All functions take NumPy arrays or torch tensors and return Python floats (or NumPy arrays for per-class values).
Conventions are stated per function; the packages layer their authors' exact quirks on top where they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ConfusionMatrix", "depth_metrics", "disparity_metrics", "pose_auc"]


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class ConfusionMatrix:
    """Accumulates a ``K×K`` confusion matrix (rows = ground truth, columns = prediction).

    Pixels whose target equals ``ignore_index`` (or lies outside ``[0, K)``) are skipped. Per-class scores of classes
    that never occur (zero denominator) are NaN and left out of the means.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Add a batch of integer label maps of equal shape."""
        pred, target = _np(pred), _np(target)
        if pred.shape != target.shape:
            raise ValueError(f"ConfusionMatrix.update: pred shape {pred.shape} != target shape {target.shape}")
        pred, target = pred.reshape(-1).astype(np.int64), target.reshape(-1).astype(np.int64)
        keep = (target >= 0) & (target < self.num_classes)
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        pred, target = pred[keep], target[keep]
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"ConfusionMatrix.update: predictions outside [0, {self.num_classes})")
        k = self.num_classes
        self.matrix += np.bincount(target * k + pred, minlength=k * k).reshape(k, k)
        return self

    @staticmethod
    def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.maximum(den, 1), np.nan)

    @property
    def _tp(self) -> np.ndarray:
        return np.diag(self.matrix).astype(np.float64)

    def oa(self) -> float:
        """Overall accuracy (pixel accuracy)."""
        total = self.matrix.sum()
        return float(self._tp.sum() / total) if total else float("nan")

    def precision(self) -> np.ndarray:
        return self._ratio(self._tp, self.matrix.sum(0).astype(np.float64))

    def recall(self) -> np.ndarray:
        return self._ratio(self._tp, self.matrix.sum(1).astype(np.float64))

    def f1(self) -> np.ndarray:
        tp = self._tp
        return self._ratio(2 * tp, (self.matrix.sum(0) + self.matrix.sum(1)).astype(np.float64))

    def iou(self) -> np.ndarray:
        tp = self._tp
        return self._ratio(tp, (self.matrix.sum(0) + self.matrix.sum(1)).astype(np.float64) - tp)

    def miou(self) -> float:
        return float(np.nanmean(self.iou())) if np.isfinite(self.iou()).any() else float("nan")

    def kappa(self) -> float:
        """Cohen's kappa: ``(p_o - p_e) / (1 - p_e)``."""
        total = self.matrix.sum()
        if not total:
            return float("nan")
        p_o = self._tp.sum() / total
        p_e = float((self.matrix.sum(0).astype(np.float64) * self.matrix.sum(1)).sum()) / float(total) ** 2
        return float((p_o - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def disparity_metrics(
    pred: Any,
    gt: Any,
    valid: Any | None = None,
    thresholds: Sequence[float] = (1.0, 2.0, 3.0),
    d1_abs: float = 3.0,
    d1_rel: float = 0.05,
) -> dict[str, float]:
    """End-point error and outlier rates over valid pixels.

    ``EPE`` = mean ``|pred - gt|``; ``D1`` = fraction with error ``> d1_abs`` px AND ``> d1_rel·|gt|`` (KITTI);
    ``>k px`` = fraction with error ``> k``. ``valid`` defaults to finite ground truth. Signed disparities are fine.
    """
    pred, gt = _np(pred).astype(np.float64), _np(gt).astype(np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"disparity_metrics: pred shape {pred.shape} != gt shape {gt.shape}")
    mask = np.isfinite(gt) if valid is None else _np(valid).astype(bool) & np.isfinite(gt)
    if mask.shape != gt.shape:
        raise ValueError(f"disparity_metrics: valid mask shape {mask.shape} != gt shape {gt.shape}")
    if not mask.any():
        raise ValueError("disparity_metrics: no valid pixel")
    err = np.abs(pred[mask] - gt[mask])
    out = {"EPE": float(err.mean()), "D1": float(np.mean((err > d1_abs) & (err > d1_rel * np.abs(gt[mask]))))}
    for k in thresholds:
        out[f">{k:g}px"] = float(np.mean(err > k))
    return out


def depth_metrics(
    pred: Any,
    gt: Any,
    valid: Any | None = None,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    median_scaling: bool = True,
) -> dict[str, float]:
    """Eigen et al. depth metrics over pixels with ``min_depth < gt < max_depth`` (and ``valid``).

    With ``median_scaling`` the prediction is multiplied by ``median(gt) / median(pred)`` first; predictions are then
    clipped to ``[min_depth, max_depth]``. Returns ``abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3`` (δ < 1.25^k)
    and the applied ``scale``.
    """
    pred, gt = _np(pred).astype(np.float64), _np(gt).astype(np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"depth_metrics: pred shape {pred.shape} != gt shape {gt.shape}")
    mask = (gt > min_depth) & (gt < max_depth)
    if valid is not None:
        mask &= _np(valid).astype(bool)
    if not mask.any():
        raise ValueError("depth_metrics: no valid pixel")
    p, g = pred[mask], gt[mask]
    if not np.isfinite(p).all():
        raise ValueError("depth_metrics: prediction contains NaN or infinite values")
    scale = float(np.median(g) / np.median(p)) if median_scaling else 1.0
    p = np.clip(p * scale, min_depth, max_depth)
    ratio = np.maximum(g / p, p / g)
    return {
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
        "scale": scale,
    }


def pose_auc(errors: Any, thresholds: Sequence[float] = (5.0, 10.0, 20.0)) -> list[float]:
    """Area under the cumulative pose-error curve up to each threshold, normalised to [0, 1].

    The recall curve is the piecewise-linear curve through ``(0, 0)`` and ``(e_i, i/N)`` for the sorted errors; its
    trapezoidal integral over ``[0, t]`` divided by ``t`` is the AUC@t (the SuperGlue/LightGlue convention).
    Infinite errors (failed estimates) count as misses.
    """
    errors = np.sort(_np(errors).astype(np.float64).reshape(-1))
    if errors.size == 0:
        raise ValueError("pose_auc: no errors given")
    if np.isnan(errors).any():
        raise ValueError("pose_auc: errors contain NaN")
    recall = np.arange(1, errors.size + 1) / errors.size
    xs = np.concatenate(([0.0], errors))
    ys = np.concatenate(([0.0], recall))
    aucs = []
    for t in thresholds:
        last = int(np.searchsorted(xs, t))
        x = np.concatenate((xs[:last], [t]))
        y = np.concatenate((ys[:last], [ys[last - 1]]))
        aucs.append(float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / t))
    return aucs
