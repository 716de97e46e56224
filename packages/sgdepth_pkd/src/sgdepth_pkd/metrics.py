"""Evaluation metrics (spec §f): KITTI/Cityscapes depth evaluation with per-image median scaling, and the
20-class segmentation running score.

Depth: the prediction B×1×h×w sigmoid disparity is scaled (min/max depth 0.1/100), upsampled to the ground truth
resolution, inverted, masked (``kitti_zhou``: Garg crop and 1e-3 < gt < 80; ``kitti_kitti``: gt > 0;
``cityscapes``), median-scaled per image in float32 with NumPy's median, clamped to [1e-3, 80]; the metrics are
computed per image in float64 (``semcommon.metrics.depth_metrics``) and averaged over images.

Pose: SfMLearner's absolute trajectory error over 5-frame snippets (:func:`snippet_ate`, :func:`pose_ate`).

Segmentation: :class:`SegmentationRunningScore` accumulates a confusion matrix with
``semcommon.metrics.ConfusionMatrix`` (identical IoU/recall/precision semantics, NaN for zero denominators) after
dropping predictions outside [0, K), which the original skips instead of rejecting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from semcommon.metrics import ConfusionMatrix, depth_metrics
from sgdepth_pkd.geometry import check_tensor, disp_to_depth

__all__ = [
    "DEPTH_METRIC_NAMES",
    "DepthRunningScore",
    "SegmentationRunningScore",
    "cityscapes_mask",
    "depth_image_metrics",
    "evaluate_depth_batch",
    "kitti_kitti_mask",
    "kitti_zhou_mask",
    "median_scale",
    "pose_ate",
    "predicted_depth",
    "range_mask",
    "ratio_summary",
    "relative_poses",
    "segmentation_prediction",
    "snippet_ate",
    "trajectory_positions",
]

DEPTH_METRIC_NAMES: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
_SEMCOMMON_DEPTH_NAMES = {"delta1": "a1", "delta2": "a2", "delta3": "a3"}
CLAMP_MIN, CLAMP_MAX = 1e-3, 80.0


def _numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(f"{name}: contains NaN values")
    return array


def _check_2d(gt: np.ndarray) -> None:
    if gt.ndim != 2:
        raise ValueError(f"gt: expected an H×W depth map, got shape {gt.shape}")


# ----------------------------------------------------------------------------------------------- depth masks


def kitti_zhou_mask(gt: np.ndarray) -> np.ndarray:
    """Eigen/Zhou test mask of an H×W ground truth: 1e-3 < gt < 80 inside the Garg crop
    rows [⌊0.40810811·H⌋, ⌊0.99189189·H⌋), cols [⌊0.03594771·W⌋, ⌊0.96405229·W⌋)."""
    _check_2d(gt)
    height, width = gt.shape
    crop = np.zeros(gt.shape, dtype=bool)
    crop[int(0.40810811 * height) : int(0.99189189 * height), int(0.03594771 * width) : int(0.96405229 * width)] = True
    return crop & (gt > CLAMP_MIN) & (gt < CLAMP_MAX)


def kitti_kitti_mask(gt: np.ndarray) -> np.ndarray:
    """KITTI 2015 / ``kitti`` split mask: every pixel with gt > 0 (no crop, no range limit)."""
    _check_2d(gt)
    return gt > 0


def cityscapes_mask(gt: np.ndarray) -> np.ndarray:
    """Cityscapes mask: 1e-3 < gt < 80 inside rows [⌊0.1·H⌋, ⌊0.7·H⌋), cols [⌊0.1·W⌋, ⌊0.9·W⌋)."""
    _check_2d(gt)
    height, width = gt.shape
    crop = np.zeros(gt.shape, dtype=bool)
    crop[int(0.1 * height) : int(0.7 * height), int(0.1 * width) : int(0.9 * width)] = True
    return crop & (gt > CLAMP_MIN) & (gt < CLAMP_MAX)


def range_mask(gt: np.ndarray) -> np.ndarray:
    """Synthetic data (no crop): every pixel with 1e-3 < gt < 80."""
    _check_2d(gt)
    return (gt > CLAMP_MIN) & (gt < CLAMP_MAX)


DEPTH_MASKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "kitti_zhou": kitti_zhou_mask,
    "kitti_kitti": kitti_kitti_mask,
    "cityscapes": cityscapes_mask,
    "range": range_mask,
}


# ----------------------------------------------------------------------------------------------- depth pipeline


def predicted_depth(
    disp: torch.Tensor, size: tuple[int, int], min_depth: float = 0.1, max_depth: float = 100.0
) -> torch.Tensor:
    """Sigmoid disparity B×1×h×w → depth B×1×H×W at the ground truth size: the *scaled* disparity is upsampled
    bilinearly (align_corners=False) and then inverted."""
    check_tensor(disp, "disp", ndim=4)
    if disp.shape[1] != 1:
        raise ValueError(f"disp: expected a B×1×h×w tensor, got shape {tuple(disp.shape)}")
    scaled, _ = disp_to_depth(disp, min_depth, max_depth)
    return 1.0 / F.interpolate(scaled, size=size, mode="bilinear", align_corners=False)


def median_scale(pred: np.ndarray, gt: np.ndarray) -> np.float32:
    """Median-scaling ratio median(gt)/median(pred) in float32 (NumPy median: mean of the two middle values)."""
    if pred.size == 0:
        raise ValueError("pred: no valid pixel to compute the median ratio")
    return np.float32(np.median(gt.astype(np.float32)) / np.median(pred.astype(np.float32)))


def depth_image_metrics(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, fixed_scaling: float = 0.0
) -> tuple[dict[str, float], float]:
    """Metrics of one H×W prediction against its ground truth over ``mask``; returns (metrics, applied ratio).

    ``fixed_scaling`` = 0 → per-image median scaling (float32), else the prediction is multiplied by it.
    The scaled prediction is clamped to [1e-3, 80]; the ground truth is only masked.
    """
    if pred.shape != gt.shape or mask.shape != gt.shape:
        raise ValueError(f"pred/gt/mask: shapes differ, {pred.shape}, {gt.shape}, {mask.shape}")
    if not mask.any():
        raise ValueError("mask: no valid ground-truth pixel in this image")
    pred_m, gt_m = pred[mask].astype(np.float32), gt[mask].astype(np.float32)
    ratio = median_scale(pred_m, gt_m) if fixed_scaling == 0 else np.float32(fixed_scaling)
    pred_m = np.clip(pred_m * ratio, np.float32(CLAMP_MIN), np.float32(CLAMP_MAX))
    # the mask and clamp are already applied: open bounds make semcommon's range mask and clip no-ops
    scores = depth_metrics(pred_m, gt_m, min_depth=0.0, max_depth=np.inf, median_scaling=False)
    return {name: scores[_SEMCOMMON_DEPTH_NAMES.get(name, name)] for name in DEPTH_METRIC_NAMES}, float(ratio)


class DepthRunningScore:
    """Per-image depth metrics accumulated over a validation run; :meth:`get_scores` averages over images."""

    def __init__(self) -> None:
        self.per_image: list[dict[str, float]] = []
        self.ratios: list[float] = []

    def update(self, metrics: dict[str, float], ratio: float) -> None:
        self.per_image.append(metrics)
        self.ratios.append(ratio)

    def get_scores(self) -> dict[str, float]:
        if not self.per_image:
            raise ValueError("DepthRunningScore: no image evaluated")
        return {name: float(np.mean([m[name] for m in self.per_image])) for name in DEPTH_METRIC_NAMES}

    def reset(self) -> None:
        self.per_image.clear()
        self.ratios.clear()


def ratio_summary(ratios: Any, first_quarter: bool = False) -> tuple[float, float]:
    """The "Scaling ratios | med | std" line: median of the ratios and std of ratios / median (population std).

    ``first_quarter`` (``--depth-ratio-on-validation``) summarises only the first ⌊N/4⌋ ratios (at least one).
    """
    values = _numpy(ratios, "ratios").astype(np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("ratios: empty")
    if first_quarter:
        values = values[: max(1, values.size // 4)]
    median = float(np.median(values))
    return median, float(np.std(values / median))


def evaluate_depth_batch(
    disp: torch.Tensor,
    depth_gt: Any,
    mask: Literal["kitti_zhou", "kitti_kitti", "cityscapes", "range"] = "kitti_zhou",
    min_depth: float = 0.1,
    max_depth: float = 100.0,
    fixed_scaling: float = 0.0,
    score: DepthRunningScore | None = None,
) -> DepthRunningScore:
    """Evaluate a batch: disparity B×1×h×w, ground truth B×1×H×W (or B×H×W, metres, 0 = invalid).

    Adds every image to ``score`` (a new :class:`DepthRunningScore` when None) and returns it.
    """
    if mask not in DEPTH_MASKS:
        raise ValueError(f"mask: expected one of {sorted(DEPTH_MASKS)}, got {mask!r}")
    gt = _numpy(depth_gt, "depth_gt")
    if gt.ndim == 4 and gt.shape[1] == 1:
        gt = gt[:, 0]
    check_tensor(disp, "disp", ndim=4)
    if gt.ndim != 3 or gt.shape[0] != disp.shape[0]:
        raise ValueError(f"depth_gt: expected B×1×H×W matching disp's batch, got {gt.shape}")
    score = score if score is not None else DepthRunningScore()
    with torch.no_grad():
        pred = predicted_depth(disp, gt.shape[-2:], min_depth, max_depth)[:, 0].cpu().numpy()
    for image_pred, image_gt in zip(pred, gt, strict=True):
        metrics, ratio = depth_image_metrics(image_pred, image_gt, DEPTH_MASKS[mask](image_gt), fixed_scaling)
        score.update(metrics, ratio)
    return score


# ----------------------------------------------------------------------------------------------- segmentation


def segmentation_prediction(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Logits B×K×h×w → label map B×H×W (int64): nearest upsampling to the ground-truth size, then argmax."""
    check_tensor(logits, "logits", ndim=4)
    return F.interpolate(logits, size=size, mode="nearest").argmax(dim=1)


class SegmentationRunningScore:
    """SGDepth's ``SegmentationRunningScore``: a K×K confusion matrix (rows = ground truth) over pixels with
    0 ≤ gt < K (255 and other ids dropped) and 0 ≤ pred < K. Class K−1 = 19 is never a target but counts in the
    mean IoU (IoU 0) whenever it is predicted, as in the original (spec §i.7)."""

    def __init__(self, num_classes: int = 20) -> None:
        self.confusion = ConfusionMatrix(num_classes)

    @property
    def confusion_matrix(self) -> np.ndarray:
        return self.confusion.matrix

    def update(self, gt: Any, pred: Any) -> None:
        """Add integer label maps of equal shape (ground truth first, as in the original)."""
        gt, pred = _numpy(gt, "gt").astype(np.int64), _numpy(pred, "pred").astype(np.int64)
        if gt.shape != pred.shape:
            raise ValueError(f"gt/pred: shapes differ, {gt.shape} vs {pred.shape}")
        keep = (pred >= 0) & (pred < self.confusion.num_classes)
        self.confusion.update(pred[keep], gt[keep])

    def get_scores(self) -> dict[str, Any]:
        """``iou`` and ``acc`` (K,) with NaN for classes absent from gt and pred (iou) or from gt (acc); ``meaniou``,
        ``meanacc``, ``meanprec`` (NaN-skipping means), ``totalacc``, ``freqwacc`` (Σ freq·IoU over present classes)."""
        matrix = self.confusion.matrix
        total = matrix.sum()
        if total == 0:
            raise ValueError("SegmentationRunningScore: no pixel accumulated")
        iou, acc, precision = self.confusion.iou(), self.confusion.recall(), self.confusion.precision()
        freq = matrix.sum(axis=1) / total
        present = freq > 0
        return {
            "iou": iou,
            "acc": acc,
            "meaniou": float(np.nanmean(iou)),
            "meanacc": float(np.nanmean(acc)),
            "meanprec": float(np.nanmean(precision)),
            "totalacc": float(np.diag(matrix).sum() / total),
            "freqwacc": float((freq[present] * iou[present]).sum()),
        }

    def reset(self) -> None:
        self.confusion.reset()


# ----------------------------------------------------------------------------------------------- pose (ATE)


def _poses(value: Any, name: str) -> np.ndarray:
    poses = _numpy(value, name).astype(np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"{name}: expected N×4×4 poses, got shape {poses.shape}")
    return poses


def relative_poses(global_poses: Any) -> np.ndarray:
    """Camera-to-world poses N×4×4 → the N−1 relative poses inv(P_{i+1})·P_i, which map points of camera i into
    camera i+1 (the convention of the model's ``('cam_T_cam', 0, 1)``)."""
    poses = _poses(global_poses, "global_poses")
    return np.linalg.inv(poses[1:]) @ poses[:-1]


def trajectory_positions(relative: Any) -> np.ndarray:
    """Chain N relative poses (as :func:`relative_poses`) by right-multiplication from the identity and collect the
    translations → (N+1)×3 positions (SfMLearner's snippet trajectory)."""
    poses = _poses(relative, "relative")
    current = np.eye(4)
    positions = [current[:3, 3].copy()]
    for pose in poses:
        current = current @ pose
        positions.append(current[:3, 3].copy())
    return np.stack(positions)


def snippet_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """ATE of one snippet (K×3 positions): shift the prediction onto the first GT position, fit the least-squares
    scale Σ gt·pred / Σ pred², return sqrt(Σ |scale·pred − gt|²) / K."""
    if gt_xyz.shape != pred_xyz.shape or gt_xyz.ndim != 2 or gt_xyz.shape[1] != 3:
        raise ValueError(f"gt_xyz/pred_xyz: expected equal K×3 arrays, got {gt_xyz.shape}, {pred_xyz.shape}")
    pred = pred_xyz + (gt_xyz[0] - pred_xyz[0])
    scale = np.sum(gt_xyz * pred) / np.sum(pred**2)
    return float(np.sqrt(np.sum((scale * pred - gt_xyz) ** 2)) / gt_xyz.shape[0])


def pose_ate(pred_relative: Any, gt_relative: Any, snippet_length: int = 5) -> tuple[float, float]:
    """KITTI odometry evaluation (spec §f.3): ATE of every snippet of ``snippet_length`` frames (sliding by one),
    built from the predicted and GT relative poses N×4×4; returns (mean, std) over snippets."""
    pred, gt = _poses(pred_relative, "pred_relative"), _poses(gt_relative, "gt_relative")
    steps = snippet_length - 1
    if pred.shape != gt.shape or len(pred) < steps:
        raise ValueError(
            f"pred_relative/gt_relative: need equal shapes with ≥ {steps} poses, got {pred.shape}, {gt.shape}"
        )
    errors = [
        snippet_ate(trajectory_positions(gt[i : i + steps]), trajectory_positions(pred[i : i + steps]))
        for i in range(len(pred) - steps + 1)
    ]
    return float(np.mean(errors)), float(np.std(errors))
