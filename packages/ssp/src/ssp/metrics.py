"""Metrics with the original semantics: dataset-level mIoU (torchmetrics 1.x multiclass Jaccard, macro average
skipping classes with an empty union), per-class IoU, temporal consistency (TC) and label conversion."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ssp.config import DATASET_NUM_CLASSES
from ssp.geometry import flow_warp

__all__ = [
    "FlowFn",
    "MeanIoU",
    "class_iou",
    "confusion_matrix",
    "convert_labels",
    "iou_from_confusion",
    "mean_iou",
    "temporal_consistency",
    "temporal_consistency_forwardbackward",
    "video_tc",
]

FlowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(image1 1×3×H×W, image2 1×3×H×W) -> flow 1×2×H×W`` from image1 to image2 (e.g. RAFT, 20 iterations)."""


def confusion_matrix(
    preds: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """``num_classes × num_classes`` counts, rows = label, columns = prediction; ``ignore_index`` pixels dropped."""
    preds, labels = torch.as_tensor(preds), torch.as_tensor(labels)
    if preds.shape != labels.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and labels {tuple(labels.shape)} must have the same shape")
    preds, labels = preds.reshape(-1).long(), labels.reshape(-1).long()
    if ignore_index is not None:
        keep = labels != ignore_index
        preds, labels = preds[keep], labels[keep]
    if preds.numel() and (preds.min() < 0 or preds.max() >= num_classes):
        raise ValueError(f"preds: values must lie in [0, {num_classes}), got [{preds.min()}, {preds.max()}]")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels: values must lie in [0, {num_classes}) or be {ignore_index}")
    return torch.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(confmat: torch.Tensor, average: str = "macro") -> torch.Tensor:
    """``average="none"``: per-class IoU (0 for empty union); ``"macro"``: mean over classes with a non-empty union."""
    confmat = confmat.double()
    tp = torch.diag(confmat)
    union = confmat.sum(0) + confmat.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.zeros_like(tp))
    if average == "none":
        return iou.float()
    if average != "macro":
        raise ValueError(f"average: expected macro | none, got {average!r}")
    present = (confmat.sum(0) + confmat.sum(1)) > 0
    if not present.any():
        return confmat.new_zeros(()).float()
    return iou[present].mean().float()


def mean_iou(
    preds: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """mIoU over all pixels of ``preds``/``labels`` together (one confusion matrix)."""
    return iou_from_confusion(confusion_matrix(preds, labels, num_classes, ignore_index), "macro")


def class_iou(
    preds: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """Per-class IoU ``(num_classes,)``; classes with an empty union report 0."""
    return iou_from_confusion(confusion_matrix(preds, labels, num_classes, ignore_index), "none")


class MeanIoU:
    """Dataset-level accumulator: ``update(preds, labels)`` per batch, then ``miou()`` / ``class_iou()``."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.confmat = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, preds: torch.Tensor, labels: torch.Tensor) -> None:
        self.confmat += confusion_matrix(preds.cpu(), labels.cpu(), self.num_classes, self.ignore_index)

    def miou(self) -> torch.Tensor:
        return iou_from_confusion(self.confmat, "macro")

    def class_iou(self) -> torch.Tensor:
        return iou_from_confusion(self.confmat, "none")


def _check_video(preds: torch.Tensor, frames: torch.Tensor) -> None:
    if (
        preds.dim() != 3
        or frames.dim() != 4
        or frames.shape[0] != preds.shape[0]
        or frames.shape[-2:] != preds.shape[-2:]
    ):
        raise ValueError(
            f"video: expected preds T×H×W and frames T×3×H×W, got {tuple(preds.shape)}, {tuple(frames.shape)}"
        )


def _warp_labels(labels: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Nearest flow warp of an ``H×W`` label map (original grid convention; out of view -> class 0)."""
    return flow_warp(labels[None, None].float(), flow.reshape(1, 2, *labels.shape)).round().long()[0, 0]


def temporal_consistency(preds: torch.Tensor, frames: torch.Tensor, flow_fn: FlowFn, num_classes: int) -> torch.Tensor:
    """TC of one video: mean over pairs (t, t+1) of mIoU(warp(pred_{t+1}, flow_fn(frame_t, frame_{t+1})), pred_t).

    ``preds`` ``T×H×W`` int, ``frames`` ``T×3×H×W`` normalised (T >= 2). Average over videos separately
    (each clip weighs equally).
    """
    _check_video(preds, frames)
    if preds.shape[0] < 2:
        raise ValueError("temporal_consistency: a video needs at least 2 frames")
    scores = []
    for t in range(preds.shape[0] - 1):
        flow = flow_fn(frames[t : t + 1], frames[t + 1 : t + 2])
        warped = _warp_labels(preds[t + 1], flow)
        scores.append(mean_iou(warped, preds[t], num_classes, ignore_index=None))
    return torch.stack(scores).mean()


def temporal_consistency_forwardbackward(
    preds: torch.Tensor, frames: torch.Tensor, flow_fn: FlowFn, num_classes: int | None = None
) -> torch.Tensor:
    """Forward-backward TC (not reported in the paper): per pair, the pixel agreement of both warps on pixels
    where the two flows agree, averaged over the two directions, then over pairs.

    ``a = flow_fn(frame_t, frame_{t+1})``, ``b = flow_fn(frame_{t+1}, frame_t)`` (15 RAFT iterations in the original);
    ``occ = |a + b|^2 > 0.01 (|a|^2 + |b|^2) + 0.5`` (naive, unwarped); score =
    ``(agree(warp(pred_{t+1}, a), pred_t) + agree(warp(pred_t, b), pred_{t+1})) / 2`` over non-occluded pixels.
    ``num_classes`` is unused (agreement, not IoU); kept for a uniform signature.
    """
    _check_video(preds, frames)
    if preds.shape[0] < 2:
        raise ValueError("temporal_consistency_forwardbackward: a video needs at least 2 frames")
    scores = []
    for t in range(preds.shape[0] - 1):
        flow_a = flow_fn(frames[t : t + 1], frames[t + 1 : t + 2])
        flow_b = flow_fn(frames[t + 1 : t + 2], frames[t : t + 1])
        energy = lambda f: torch.sum(f**2, dim=1)[0]  # noqa: E731
        visible = ~(energy(flow_a + flow_b) > 0.01 * (energy(flow_a) + energy(flow_b)) + 0.5)
        count = visible.sum()
        agree_next = (visible & (_warp_labels(preds[t + 1], flow_a) == preds[t])).sum() / count
        agree_prev = (visible & (_warp_labels(preds[t], flow_b) == preds[t + 1])).sum() / count
        scores.append((agree_next + agree_prev) / 2)
    return torch.stack(scores).mean()


def convert_labels(mask: torch.Tensor | np.ndarray, dataset: str = "uavid") -> torch.Tensor | np.ndarray:
    """Raw mask values -> train ids: 0 -> 255 (ignore), v -> v - 1, values beyond the class table -> 255."""
    if dataset not in DATASET_NUM_CLASSES:
        raise ValueError(f"dataset: expected one of {sorted(DATASET_NUM_CLASSES)}, got {dataset!r}")
    num_classes = DATASET_NUM_CLASSES[dataset]
    if isinstance(mask, np.ndarray):
        ids = mask.astype(np.int64) - 1
        return np.where((ids < 0) | (ids >= num_classes), 255, ids)
    ids = mask.long() - 1
    return torch.where((ids < 0) | (ids >= num_classes), torch.full_like(ids, 255), ids)


def video_tc(videos: Sequence[tuple[torch.Tensor, torch.Tensor]], flow_fn: FlowFn, num_classes: int) -> torch.Tensor:
    """Reported TC: mean over clips (with >= 2 frames) of :func:`temporal_consistency`."""
    scores = [temporal_consistency(p, f, flow_fn, num_classes) for p, f in videos if p.shape[0] >= 2]
    if not scores:
        raise ValueError("video_tc: no clip with at least 2 frames")
    return torch.stack(scores).mean()
