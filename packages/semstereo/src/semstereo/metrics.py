"""SemStereo evaluation metrics.

Disparity (EPE, D1, >t px) with the original per-image rule; segmentation (PA, MPA, IoU, mIoU) in two modes:

- ``"original"`` (default, reproduces the authors' numbers): a new 5-class confusion matrix per batch built from
  ``gt·5 + pred`` over all 6 argmax classes, keeping only indices < 25 — so gt 5 is never counted, but a pixel of
  class ``g <= 3`` predicted as 5 lands in ``confusion[g+1, 0]`` and class 4 predicted as 5 is dropped; scalars are
  averaged over batches (a later NaN counted as 0, a NaN in the first batch makes the average NaN), per-class
  values with a NaN-skipping mean.
- ``"dataset"`` (corrected): one confusion matrix over the whole test set, gt 5 ignored, a predicted 5 counted as
  a miss of the true class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from semcommon.metrics import ConfusionMatrix

IGNORE_CLASS = 5
NODATA_THRESHOLD = -871.0


# ------------------------------------------------------------------------------------------------ disparity metrics
def prepare_disparity_gt(gt: torch.Tensor, maxdisp: int = 64, signed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """As the test script: mask on the raw gt (``-M <= gt < M``, or ``0 < gt < M``), then gt < -871 set to 0."""
    low = (gt >= -maxdisp) if signed else (gt > 0)
    mask = (gt < maxdisp) & low
    return torch.where(gt < NODATA_THRESHOLD, torch.zeros_like(gt), gt), mask


def _per_image(
    est: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Average ``fn`` over images; skip an image when ``mask.mean() / (gt > 0).mean() < 0.1`` (original rule).

    An image with no positive gt gives ``inf`` (kept); if every image is skipped the result is 0.
    """
    if est.shape != gt.shape or mask.shape != gt.shape:
        raise ValueError(f"disparity metric: est {tuple(est.shape)}, gt {tuple(gt.shape)}, mask {tuple(mask.shape)}")
    values = []
    for e, g, m in zip(est, gt, mask, strict=True):
        ratio = m.float().mean() / (g > 0).float().mean()
        if not bool(ratio < 0.1):
            values.append(fn(e[m], g[m]))
    if not values:
        return torch.zeros((), dtype=torch.float32, device=gt.device)
    return torch.stack(values).mean()


def epe_metric(est: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """End-point error: mean ``|est - gt|`` over the mask, per image, averaged."""
    return _per_image(est, gt, mask, lambda e, g: (e - g).abs().mean())


def d1_metric(est: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of masked pixels with ``|est - gt| > 3`` and ``|est - gt| / |gt| > 0.05``."""

    def d1(e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        err = (e - g).abs()
        return ((err > 3) & (err / g.abs() > 0.05)).float().mean()

    return _per_image(est, gt, mask, d1)


def thres_metric(est: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fraction of masked pixels with ``|est - gt| > threshold``."""
    return _per_image(est, gt, mask, lambda e, g: ((e - g).abs() > threshold).float().mean())


def disparity_metrics(
    est: torch.Tensor,
    gt_raw: torch.Tensor,
    maxdisp: int = 64,
    signed: bool = True,
    thresholds: Sequence[float] = (1, 2, 3),
) -> dict[str, float]:
    """EPE, D1 and ``Thres{t}`` of a batch from the raw gt (with -999 no-data), as the original test step."""
    gt, mask = prepare_disparity_gt(gt_raw, maxdisp, signed)
    out = {"EPE": float(epe_metric(est, gt, mask)), "D1": float(d1_metric(est, gt, mask))}
    for t in thresholds:
        out[f"Thres{t:g}"] = float(thres_metric(est, gt, mask, t))
    return out


# --------------------------------------------------------------------------------------------- segmentation metrics
def _labels(pred: torch.Tensor | np.ndarray, label: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred_t = torch.as_tensor(pred)
    label_t = torch.as_tensor(label)
    if pred_t.dim() != 4 or pred_t.shape[0] != label_t.shape[0] or pred_t.shape[2:] != label_t.shape[1:]:
        raise ValueError(f"segmentation metric: logits {tuple(pred_t.shape)} do not match label {tuple(label_t.shape)}")
    return pred_t.argmax(1).cpu().numpy().astype(np.int64), label_t.cpu().numpy().astype(np.int64)


def original_confusion(pred_logits: torch.Tensor, label: torch.Tensor, num_classes: int = 5) -> np.ndarray:
    """The original ``SegmentationMetric(5).addBatch`` confusion matrix (with its class-5 quirk), float64."""
    pred, gt = _labels(pred_logits, label)
    index = (num_classes * gt + pred).reshape(-1)
    index = index[(index >= 0) & (index < num_classes**2)]
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes).astype(np.float64)


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def scores_from_confusion(confusion: np.ndarray, num_classes: int | None = None) -> dict[str, float | np.ndarray]:
    """PA, CPA (per-class recall), MPA, IoU, mIoU of a square confusion matrix (rows = gt), NaN for empty classes.

    With ``num_classes`` only the first classes are scored (the others still count as wrong predictions).
    """
    k = confusion.shape[0] if num_classes is None else num_classes
    diag = np.diag(confusion)[:k]
    with np.errstate(divide="ignore", invalid="ignore"):
        cpa = diag / confusion.sum(axis=1)[:k]
        iou = diag / (confusion.sum(axis=1)[:k] + confusion.sum(axis=0)[:k] - diag)
        pa = diag.sum() / confusion.sum()
    return {"PA": float(pa), "MPA": float(_nanmean(cpa)), "mIoU": float(_nanmean(iou)), "IoU": iou, "CPA": cpa}


class BatchAverage:
    """The original ``AverageMeterDict``: the first batch's values are copied (a NaN there makes the average NaN),
    later NaNs are added as 0 but still counted; ``mean()`` divides by the number of batches."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            if self.count == 0 or key not in self.sums:
                self.sums[key] = float(value)
            else:
                self.sums[key] += 0.0 if math.isnan(value) else float(value)
        self.count += 1

    def mean(self) -> dict[str, float]:
        return {key: value / self.count for key, value in self.sums.items()}


@dataclass
class SegmentationEvaluator:
    """Accumulates segmentation metrics over a test set in the ``"original"`` or the ``"dataset"`` mode.

    ``update(logits B×6×H×W, label B×H×W)`` once per test batch, then ``compute()``.
    """

    mode: Literal["original", "dataset"] = "original"
    num_classes: int = 5  # evaluated classes (class 5 is "unlabelled")
    _average: BatchAverage = field(default_factory=BatchAverage)
    last: dict[str, float | np.ndarray] = field(default_factory=dict)  # scores of the last batch ("original")
    _per_class: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _matrix: ConfusionMatrix | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("original", "dataset"):
            raise ValueError(f"SegmentationEvaluator.mode must be 'original' or 'dataset', got {self.mode!r}")
        self._matrix = ConfusionMatrix(self.num_classes + 1, ignore_index=self.num_classes)

    def update(self, pred_logits: torch.Tensor, label: torch.Tensor) -> None:
        if self.mode == "dataset":
            pred, gt = _labels(pred_logits, label)
            assert self._matrix is not None
            self._matrix.update(pred, gt)
            return
        scores = scores_from_confusion(original_confusion(pred_logits, label, self.num_classes))
        self.last = scores
        self._average.update({key: float(scores[key]) for key in ("PA", "MPA", "mIoU")})
        for key in ("IoU", "CPA"):
            self._per_class.setdefault(key, []).append(np.asarray(scores[key]))

    @property
    def batches(self) -> int:
        """Batches added so far (``"original"`` mode)."""
        return self._average.count

    def compute(self) -> dict[str, float | np.ndarray]:
        if self.mode == "dataset":
            assert self._matrix is not None
            return scores_from_confusion(self._matrix.matrix.astype(np.float64), self.num_classes)
        if not self._average.count:
            raise ValueError("SegmentationEvaluator.compute: no batch was added")
        out: dict[str, float | np.ndarray] = dict(self._average.mean())
        for key, rows in self._per_class.items():  # AverageMeterDict2: NaN-skipping mean per class
            out[key] = _nanmean(np.stack(rows), axis=0)
        return out
