"""Evaluation as ``test_us3d.py`` aggregates it, plus corrected dataset-level values (labelled).

Per test batch (``test_batch_size`` 1 by default, as ``test_us3d.py``): the eval disparity vs the raw gt with the
original mask and per-image skip rule (EPE, D1, Thres1/2/3), the test losses, and the segmentation PA/MPA/mIoU of
a per-batch 5-class confusion (class-5 quirk). Scalars are averaged over batches with ``AverageMeterDict``
semantics, per-class IoU/CPA with a NaN-skipping mean. The corrected values ("corrected" in ``metrics.json``) use
every valid pixel of the set without the skip rule and one dataset-level confusion matrix (gt 5 ignored).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semcommon.runtime import autocast, progress
from semstereo.losses import disparity_loss_test, label_loss
from semstereo.metrics import BatchAverage, SegmentationEvaluator, disparity_metrics, prepare_disparity_gt

THRESHOLDS = (1, 2, 3)
CLASS_NAMES = ("ground", "trees", "building", "water", "bridge")


@dataclass
class PixelTotals:
    """Dataset-level disparity errors over every valid pixel (no per-image skip rule)."""

    abs_error: float = 0.0
    pixels: int = 0
    d1: int = 0
    above: dict[int, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))

    def update(self, est: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> None:
        err = (est - gt).abs()[mask]
        self.abs_error += float(err.double().sum())
        self.pixels += int(mask.sum())
        self.d1 += int(((err > 3) & (err / gt[mask].abs() > 0.05)).sum())
        for t in THRESHOLDS:
            self.above[t] += int((err > t).sum())

    def compute(self) -> dict[str, float]:
        n = max(self.pixels, 1)
        out = {"EPE": self.abs_error / n, "D1": self.d1 / n}
        out.update({f"Thres{t}": self.above[t] / n for t in THRESHOLDS})
        return out


@dataclass
class EvalResult:
    """``original``: the authors' ``avg_test_scalars``; ``original_per_class``: ``avg_test_scalars2``;
    ``corrected``: dataset-level values; ``items``: one row per image."""

    original: dict[str, float]
    original_per_class: dict[str, list[float]]
    corrected: dict[str, float | list[float]]
    items: list[dict[str, object]]

    def as_json(self) -> dict[str, object]:
        return {
            "original": self.original,
            "original_per_class": self.original_per_class,
            "corrected": self.corrected,
            "notes": {
                "original": "test_us3d.py aggregation: per-image metrics (skip rule mask/(gt>0) < 0.1), mean over "
                "batches; segmentation per batch with the class-5 quirk, a first-batch NaN poisons the mean",
                "corrected": "every valid pixel of the set (no skip rule); one dataset-level confusion matrix over "
                "classes 0..4 with gt 5 ignored and a predicted 5 counted as a miss",
            },
            "images": len(self.items),
        }

    def table(self) -> str:
        """The authors' print line and a readable table."""
        lines = [f"avg_test_scalars {self.original} avg_test_scalars2 {self.original_per_class}", ""]
        lines.append(f"{'metric':<10} {'original':>10} {'corrected':>10}")
        for key in ("EPE", "D1", "Thres1", "Thres2", "Thres3", "PA", "MPA", "mIoU"):
            if key in self.original or key in self.corrected:
                orig, corr = self.original.get(key, float("nan")), self.corrected.get(key, float("nan"))
                lines.append(f"{key:<10} {orig:>10.4f} {corr:>10.4f}")
        return "\n".join(lines)


def _numbers(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    batches: Iterable[dict],
    device: torch.device | str = "cpu",
    signed: bool = True,
    show_progress: bool = False,
    total: int | None = None,
    precision: str = "fp32",
) -> EvalResult:
    """Run ``model`` (eval mode, ``model.impl``; ``precision`` bf16/fp16 = approximate autocast) over ``batches``
    (dicts with ``left``, ``right``, ``disparity`` [, ``label``, ``name``])."""
    model.eval()
    maxdisp = model.config.maxdisp
    stage = 1 if model.config.att_weights_only else 2
    scalars, totals = BatchAverage(), PixelTotals()
    seg_original, seg_dataset = SegmentationEvaluator("original"), SegmentationEvaluator("dataset")
    items: list[dict[str, object]] = []
    for batch in progress(batches, desc="evaluate", total=total, enabled=show_progress):
        left, right = batch["left"].to(device), batch["right"].to(device)
        gt_raw = batch["disparity"].to(device)
        with autocast(left.device, precision):
            out = model(left, right)
        est, logits = out.disparity.float(), out.label_left.float()
        gt, mask = prepare_disparity_gt(gt_raw, maxdisp, signed)
        values = disparity_metrics(est, gt_raw, maxdisp, signed, THRESHOLDS)
        values["disp_loss"] = float(disparity_loss_test(est, gt, mask))
        label = batch.get("label")
        if label is not None:
            label = label.to(device)
            values["label_loss"] = float(label_loss(logits, label, stage=stage))
            values["loss"] = values["disp_loss"] + values["label_loss"]
            seg_original.update(logits, label)
            seg_dataset.update(logits, label)
            values.update(_numbers({k: v for k, v in seg_original.last.items() if k in ("PA", "MPA", "mIoU")}))
        scalars.update(values)
        totals.update(est, gt, mask)
        names = batch.get("name") or [f"item{len(items) + i:05d}" for i in range(len(est))]
        for i, name in enumerate(names):
            row: dict[str, object] = {"name": name}
            row.update(disparity_metrics(est[i : i + 1], gt_raw[i : i + 1], maxdisp, signed, THRESHOLDS))
            if label is not None:
                single = SegmentationEvaluator("original")
                single.update(logits[i : i + 1], label[i : i + 1])
                row.update({k: float(v) for k, v in single.compute().items() if k in ("PA", "mIoU")})
            items.append(row)
    if not items:
        raise ValueError("evaluate: the dataset is empty")
    corrected: dict[str, float | list[float]] = dict(totals.compute())
    per_class: dict[str, list[float]] = {}
    if seg_original.batches:
        original_seg = seg_original.compute()
        per_class = {key: np.asarray(original_seg[key]).tolist() for key in ("IoU", "CPA")}
        dataset_seg = seg_dataset.compute()
        corrected.update({k: float(dataset_seg[k]) for k in ("PA", "MPA", "mIoU")})
        corrected["IoU"] = np.asarray(dataset_seg["IoU"]).tolist()
    return EvalResult(scalars.mean(), per_class, corrected, items)


def _atomic_write(path: Path, text: str) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_results(result: EvalResult, out_dir: str | Path, extra: dict[str, object], overwrite: bool = False) -> None:
    """``out_dir/metrics.json`` and ``out_dir/items.csv`` (atomic; existing files only with ``overwrite``)."""
    out = Path(out_dir)
    targets = (out / "metrics.json", out / "items.csv")
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: exists (choose another --out or pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in result.items for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(result.items)
    _atomic_write(targets[1], buffer.getvalue())
    _atomic_write(targets[0], json.dumps({**extra, **result.as_json()}, indent=2) + "\n")
