"""``sgdepth-pkd evaluate``: KITTI Eigen depth metrics and segmentation mIoU as the authors aggregate them (§f).

Depth: per-image median scaling (or ``--fixed-scaling``), metrics per image averaged over images, the
"Scaling ratios | med | std" line (``--ratio-first-quarter``: first quarter of the ratios only). Segmentation: the
20-class confusion matrix; the authors' mIoU counts class 19 (never a target) whenever it is predicted (§i.7), so
``miou_19_corrected`` (mean over the 19 real classes) is reported next to it, labelled. Writes ``metrics.json`` and
``per_image.csv`` to ``--out`` (atomically).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from semcommon.runtime import add_inference_arguments, progress, resolve_device
from sgdepth_pkd.data.synthetic import SyntheticConfig, SyntheticDrivingDataset
from sgdepth_pkd.inference import network_outputs
from sgdepth_pkd.metrics import (
    DEPTH_MASKS,
    DEPTH_METRIC_NAMES,
    DepthRunningScore,
    SegmentationRunningScore,
    evaluate_depth_batch,
    ratio_summary,
    segmentation_prediction,
)
from sgdepth_pkd.model.sgdepth import SGDepth
from sgdepth_pkd.outputs import write_csv, write_json

__all__ = ["EvalResult", "add_evaluate_arguments", "evaluate_loader", "run_evaluate", "synthetic_eval_dataset"]

SYNTHETIC_EVAL_SEED = 100_000
"""Held-out synthetic sequences start at this seed (training data uses small seeds)."""


@dataclass
class EvalResult:
    """Accumulated scores of one evaluation run and the per-item rows (name, metrics, ratio)."""

    depth: DepthRunningScore
    seg: SegmentationRunningScore
    names: list[str]

    def metrics(self, first_quarter: bool = False) -> dict[str, Any]:
        """Flat metrics dict: depth metrics + ratio median/std, segmentation mIoU (authors' and corrected)."""
        out: dict[str, Any] = {}
        if self.depth.per_image:
            out.update(self.depth.get_scores())
            out["ratio_median"], out["ratio_std"] = ratio_summary(self.depth.ratios, first_quarter)
        if self.seg.confusion_matrix.sum() > 0:
            scores = self.seg.get_scores()
            out["miou"] = scores["meaniou"]
            out["miou_19_corrected"] = float(np.nanmean(scores["iou"][:19]))
            out["mean_accuracy"] = scores["meanacc"]
            out["total_accuracy"] = scores["totalacc"]
        return out


def synthetic_eval_dataset(num_sequences: int = 4, config: SyntheticConfig | None = None) -> Dataset:
    """Held-out synthetic sequences (seeds from :data:`SYNTHETIC_EVAL_SEED`), no augmentation."""
    return SyntheticDrivingDataset(num_sequences, config, seed=SYNTHETIC_EVAL_SEED)


@torch.no_grad()
def evaluate_loader(
    model: SGDepth,
    loader: DataLoader,
    mask: str = "kitti_zhou",
    fixed_scaling: float = 0.0,
    show_progress: bool = False,
    impl: str = "fast",
    precision: str = "fp32",
    compile: bool = False,
) -> EvalResult:
    """Run the model on every batch (``('color_aug', 0, 0)`` at the network size) and score the depth against
    ``('depth', 0, 0)`` and the segmentation against ``('segmentation', 0, 0)`` where the batch has them."""
    if mask not in DEPTH_MASKS:
        raise ValueError(f"mask: expected one of {sorted(DEPTH_MASKS)}, got {mask!r}")
    model.eval()
    device = next(model.parameters()).device
    result = EvalResult(DepthRunningScore(), SegmentationRunningScore(model.config.num_classes), [])
    for batch in progress(loader, desc="evaluate", enabled=show_progress):
        images = batch["color_aug", 0, 0].to(device)
        disps, logits = network_outputs(model, images, impl, precision, compile)
        result.names.extend(batch["name"])
        if ("depth", 0, 0) in batch:
            evaluate_depth_batch(
                disps[0].float(), batch["depth", 0, 0], mask, model.config.min_depth, model.config.max_depth,
                fixed_scaling, result.depth,
            )  # fmt: skip
        if ("segmentation", 0, 0) in batch:
            gt = batch["segmentation", 0, 0][:, 0]
            result.seg.update(gt, segmentation_prediction(logits, tuple(gt.shape[-2:])).cpu())
    return result


def print_table(metrics: dict[str, Any], name: str = "evaluation") -> None:
    """The authors' tables: scaling ratios, the depth metrics (3 decimals), segmentation."""
    if "abs_rel" in metrics:
        print(f"Scaling ratios | med: {metrics['ratio_median']:.3f} | std: {metrics['ratio_std']:.3f}")
        print(" | ".join(f"{n:>8}" for n in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")))
        print(" | ".join(f"{metrics[n]:8.3f}" for n in DEPTH_METRIC_NAMES))
    if "miou" in metrics:
        print("eval_name | domain | miou | accuracy | miou_19_corrected")
        print(
            f"{name} | segmentation | {metrics['miou']:.3f} | {metrics['mean_accuracy']:.3f} | "
            f"{metrics['miou_19_corrected']:.3f}"
        )


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="our RUN_DIR/checkpoints/last.pt or the authors' model.pth")
    parser.add_argument("--data", default="synthetic", help="synthetic | KITTI raw root folder")
    parser.add_argument("--split", help="split list for --data DIR (e.g. the Eigen test files)")
    parser.add_argument("--gt", default="velodyne", help="velodyne (project the scans) | path to gt_depths.npz")
    parser.add_argument("--cityscapes", help="Cityscapes root: also evaluate segmentation on its val split")
    parser.add_argument(
        "--mask", default=None, choices=sorted(DEPTH_MASKS), help="default kitti_zhou (synthetic: range)"
    )
    parser.add_argument("--fixed-scaling", type=float, default=0.0, help="0 = per-image median scaling (default)")
    parser.add_argument("--ratio-first-quarter", action="store_true", help="ratio summary over the first quarter")
    parser.add_argument("--sequences", type=int, default=4, help="held-out synthetic sequences (--data synthetic)")
    parser.add_argument("--out", default="runs/eval-sgdepth_pkd", help="folder for metrics.json and per_image.csv")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    add_inference_arguments(parser)


def run_evaluate(args: argparse.Namespace) -> int:
    from sgdepth_pkd.checkpoint import load_model
    from sgdepth_pkd.data.cityscapes import CityscapesDataset
    from sgdepth_pkd.data.kitti import KittiRawDataset

    if args.batch_size < 1 or args.sequences < 1:
        raise ValueError("--batch-size and --sequences must be >= 1")
    if args.fixed_scaling < 0 or not np.isfinite(args.fixed_scaling):
        raise ValueError(f"--fixed-scaling: must be a finite value >= 0, got {args.fixed_scaling}")
    model = load_model(args.checkpoint).to(resolve_device(args.device))
    size = (model.config.height, model.config.width)
    runs: list[tuple[str, Dataset, str]] = []
    if args.data == "synthetic":
        config = SyntheticConfig(height=size[0], width=size[1])
        runs.append(("synthetic", synthetic_eval_dataset(args.sequences, config), args.mask or "range"))
    else:
        if not args.split:
            raise ValueError("--split: required with --data DIR (a KITTI split list)")
        runs.append(("kitti", KittiRawDataset(args.data, args.split, size, gt=args.gt), args.mask or "kitti_zhou"))
    if args.cityscapes:
        runs.append(("cityscapes", CityscapesDataset(args.cityscapes, "val", (512, 1024)), "range"))
    metrics: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for name, dataset, mask in runs:
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
        result = evaluate_loader(
            model, loader, mask, args.fixed_scaling, show_progress=True, impl=args.impl,
            precision=args.precision, compile=args.compile,
        )  # fmt: skip
        metrics[name] = result.metrics(args.ratio_first_quarter)
        print_table(metrics[name], name)
        for index, (item, ratio) in enumerate(zip(result.depth.per_image, result.depth.ratios, strict=True)):
            rows.append([name, result.names[index], *(item[n] for n in DEPTH_METRIC_NAMES), ratio])
    out = Path(args.out)
    write_csv(out / "per_image.csv", ["dataset", "name", *DEPTH_METRIC_NAMES, "ratio"], rows)
    write_json(out / "metrics.json", {"checkpoint": str(args.checkpoint), **metrics})
    print(f"wrote {out / 'metrics.json'} and {out / 'per_image.csv'}")
    return 0
