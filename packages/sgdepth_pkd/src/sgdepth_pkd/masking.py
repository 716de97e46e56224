"""Dynamic-class (DC) masking of SGDepth (spec §c.6): hide moving objects from the photometric loss.

Before a training step (from ``from_epoch`` on) the network, in eval mode, segments the current and the source frames;
the source label maps are warped to the current frame with the r = 0 sampling grids (nearest, border). Per image a
2-class IoU ("movable" vs the rest, accumulated over the source frames) measures whether the movable pixels agree
after warping; if the movable IoU is below the current threshold, every movable pixel of the current frame and of the
warped frames is masked out (``moving_mask`` = 0 there, 1 elsewhere, shape B×H×W, the input of
:func:`sgdepth_pkd.losses.depth_reprojection_losses`). After each epoch the threshold becomes a percentile of the
IoUs logged during that epoch.

Reconstruction notes (SGDepth's trainer is not in the authors' repository): the log is cleared after every threshold
update (``keep_log=True`` keeps all epochs); a percentile outside [0, 100] — the linear schedule reaches negative
values in the last epochs — or an empty log gives threshold 0 (nothing masked), as SGDepth's error path does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sgdepth_pkd.geometry import check_tensor

__all__ = ["DCMasking", "DCMaskingConfig", "movable", "movable_ious", "segment_frames", "warp_labels"]

MOVABLE_ABOVE, MOVABLE_BELOW = 10, 100
"""Movable classes: trainId strictly between 10 (sky) and 100 — person … bicycle (11–18) and class 19."""


@dataclass(frozen=True)
class DCMaskingConfig:
    """``--masking-from-epoch`` 15, ``--train-num-epochs`` 20, ``--moving-mask-percent`` 0.15 (SGDepth: 0.1),
    ``--masking-linear-increase`` (percentile 1 − (epoch + 1 − from)/(num_epochs − 1 − from) instead)."""

    from_epoch: int = 15
    num_epochs: int = 20
    percent: float = 0.15
    linear_increase: bool = False
    keep_log: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.percent <= 1:
            raise ValueError(f"percent: expected a fraction in [0, 1], got {self.percent}")
        if self.linear_increase and self.num_epochs - 1 - self.from_epoch <= 0:
            raise ValueError(
                f"from_epoch {self.from_epoch} leaves no epoch for the linear schedule of {self.num_epochs}"
            )


def movable(labels: torch.Tensor) -> torch.Tensor:
    """Integer label map (any shape) → bool mask of movable classes (10 < trainId < 100)."""
    return (labels > MOVABLE_ABOVE) & (labels < MOVABLE_BELOW)


def warp_labels(labels: torch.Tensor, grid: torch.Tensor, consistent_grid: bool = False) -> torch.Tensor:
    """Label map B×H×W (int) sampled at ``grid`` B×H×W×2 (nearest, border) → B×H×W int64.

    ``consistent_grid`` as in :func:`sgdepth_pkd.geometry.warp_image` (default: the authors' align_corners=False).
    """
    check_tensor(labels, "labels", ndim=3)
    check_tensor(grid, "grid", ndim=4)
    if grid.shape[:-1] != labels.shape or grid.shape[-1] != 2:
        raise ValueError(f"grid: expected {tuple(labels.shape)}×2, got {tuple(grid.shape)}")
    sampled = F.grid_sample(
        labels[:, None].to(grid.dtype), grid, mode="nearest", padding_mode="border", align_corners=consistent_grid
    )
    return sampled[:, 0].round().long()


def movable_ious(current: torch.Tensor, warped: Mapping[int, torch.Tensor]) -> np.ndarray:
    """Per-image IoU of the classes (non-movable, movable) between the current label map B×H×W and the warped
    source maps, with one 2×2 confusion matrix per image accumulated over the sources → B×2 float64 (NaN where a
    class is absent from both)."""
    target = movable(current)
    counts = torch.zeros(current.shape[0], 2, 2, dtype=torch.float64)  # [image, target class, predicted class]
    for labels in warped.values():
        if labels.shape != current.shape:
            raise ValueError(f"warped label map {tuple(labels.shape)} does not match current {tuple(current.shape)}")
        pred = movable(labels)
        for t in (False, True):
            for p in (False, True):
                counts[:, int(t), int(p)] += ((target == t) & (pred == p)).flatten(1).sum(1).double().cpu()
    true_pos = counts.diagonal(dim1=1, dim2=2)
    union = counts.sum(2) + counts.sum(1) - true_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return (true_pos / union).numpy()


@torch.no_grad()
def segment_frames(model: torch.nn.Module, frames: Mapping[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Argmax label maps B×H×W of every frame (``color_aug``, B×3×H×W) by a model with ``predict_segmentation``,
    run in eval mode; the model's training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return {frame: model.predict_segmentation(images).argmax(1) for frame, images in frames.items()}
    finally:
        model.train(was_training)


class DCMasking:
    """Moving-object masking state: thresholds and the IoU log of the current epoch."""

    def __init__(self, config: DCMaskingConfig | None = None) -> None:
        self.config = config or DCMaskingConfig()
        self.thresholds = {"non_moving": 0.0, "moving": 0.0}
        self.log: dict[str, list[float]] = {"non_moving": [], "moving": []}

    def active(self, epoch: int) -> bool:
        """Whether masks are computed in ``epoch`` (0-based)."""
        return epoch >= self.config.from_epoch

    def moving_mask(self, current: torch.Tensor, warped: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """Current label map B×H×W and warped source maps {frame: B×H×W} → moving mask B×H×W float (0 = masked).

        Logs each image's non-NaN IoUs; an image whose movable IoU is below ``thresholds['moving']`` gets all its
        movable pixels (current and every warped frame) masked.
        """
        check_tensor(current, "current", ndim=3)
        ious = movable_ious(current, warped)
        masked = torch.zeros(current.shape, dtype=torch.bool, device=current.device)
        for i, (non_moving, moving) in enumerate(ious):
            if not np.isnan(non_moving):
                self.log["non_moving"].append(float(non_moving))
            if np.isnan(moving):
                continue
            self.log["moving"].append(float(moving))
            if moving < self.thresholds["moving"]:
                masked[i] = movable(current[i])
                for labels in warped.values():
                    masked[i] |= movable(labels[i])
        return (~masked).float()

    def percentile(self, epoch: int) -> float:
        """Fraction of logged IoUs below the next threshold: fixed ``percent`` or the linear schedule."""
        config = self.config
        if config.linear_increase:
            return 1 - (epoch + 1 - config.from_epoch) / (config.num_epochs - 1 - config.from_epoch)
        return config.percent

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Update the thresholds from the epoch's log (from ``from_epoch`` on), clear the log; returns thresholds."""
        if self.active(epoch):
            q = 100 * self.percentile(epoch)
            self.thresholds = {
                name: float(np.percentile(values, q)) if values and 0 <= q <= 100 else 0.0
                for name, values in self.log.items()
            }
        if not self.config.keep_log:
            self.log = {"non_moving": [], "moving": []}
        return dict(self.thresholds)
