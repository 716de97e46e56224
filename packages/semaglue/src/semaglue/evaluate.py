"""``semaglue evaluate``: score a matcher with the authors' protocols.

- **Homography** (``--data synthetic`` = held-out synthetic pairs of other scikit-image photos, or ``--data DIR``
  in the HPatches layout ``i_*/v_*/{1..6}.ppm, H_1_k``): RANSAC homography (OpenCV, 3 px) from the matches,
  mean corner error, ``H_AUC@1/3/5px`` (area under the cumulative corner-error curve, the pose-AUC formula),
  match precision and recall at 3 px; HPatches also per illumination (``i_``) / viewpoint (``v_``) subset.
- **YFCC** (``--data DIR --pairs yfcc_test_pairs_with_gt.txt``): exactly ``match-pairs --eval`` (epipolar precision
  at 5e-4, matching score, relative pose with ``--pose_estimator``, ``AUC@5/10/20`` of max(R, t) error) with the
  predictor as network; matches are dumped in the authors' ``*_matches.npz`` format next to the results.

Writes ``OUT/metrics.json`` and ``OUT/pairs.csv`` (one row per pair) and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from semaglue import match_pairs
from semaglue.data.hpatches import HPatches
from semaglue.data.synthetic import HELD_OUT_PHOTOS, SyntheticConfig, SyntheticHomographies
from semaglue.homography import gt_matches_from_homography
from semaglue.outputs import save_csv, save_json
from semaglue.predict import Predictor, add_predictor_arguments, predictor_from_args
from semaglue.train import pair_metrics, summarise_homography
from semcommon.runtime import progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", required=True, help="RUN_DIR/checkpoints/last.pt or the authors' checkpoint_best.tar")
    add("--data", default="synthetic", help="'synthetic', an HPatches folder, or the YFCC image root (with --pairs)")
    add("--pairs", help="YFCC pair list with ground truth (38 fields per line): selects the YFCC protocol")
    add(
        "--out",
        default="runs/semaglue-eval",
        help="output folder: metrics.json, pairs.csv (default: runs/semaglue-eval)",
    )
    add("--num_pairs", type=int, default=100, help="synthetic pairs (default: 100)")
    add("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"), help="synthetic pair size")
    add("--max_size", type=int, default=None, help="HPatches: downscale so the longer side is at most this")
    add("--resize", type=int, nargs="+", default=[1600], help="YFCC: as match-pairs (default: 1600)")
    add("--pose_estimator", choices=("ransac", "magsac", "dlt"), default="ransac", help="YFCC pose solver")
    add("--max_length", type=int, default=-1, help="only the first N pairs (-1: all)")
    add_predictor_arguments(parser)


def _homography_rows(predictor: Predictor, dataset: torch.utils.data.Dataset, limit: int) -> list[dict]:
    count = len(dataset) if limit < 0 else min(limit, len(dataset))  # type: ignore[arg-type]
    rows = []
    for index in progress(range(count), desc="evaluating", total=count):
        item = dataset[index]
        result = predictor.match_one(item["image0"][None], item["image1"][None])
        kpts0, kpts1, m = result["keypoints0"], result["keypoints1"], result["matches"]
        valid = m > -1
        gt0, _ = gt_matches_from_homography(
            torch.from_numpy(kpts0)[None],
            torch.from_numpy(kpts1)[None],
            item["H_0to1"][None],
            tuple(item["image0"].shape[-2:]),
            tuple(item["image1"].shape[-2:]),
        )
        metrics = pair_metrics(
            kpts0[valid],
            kpts1[m[valid]],
            item["H_0to1"].numpy(),
            int((gt0 >= 0).sum()),
            tuple(item["image0"].shape[-2:]),
        )
        rows.append({"name": item["name"], **metrics, "scene_type": item.get("scene_type", "synthetic")})
    return rows


def _print_homography(table: dict[str, float], count: int) -> None:
    names = ["H_AUC@1px", "H_AUC@3px", "H_AUC@5px", "precision", "recall"]
    print(f"Evaluation Results (mean over {count} pairs):")
    print("\t".join(names))
    print("\t".join(f"{table[k]:.2f}" for k in names))


def run(args: argparse.Namespace) -> dict[str, float]:
    """Evaluate; returns the metrics written to ``OUT/metrics.json``."""
    if args.num_pairs < 1:
        raise ValueError(f"--num_pairs must be >= 1, got {args.num_pairs}")
    if min(args.size) < 32:
        raise ValueError(f"--size must be at least 32×32, got {args.size}")
    predictor = predictor_from_args(args)
    out = Path(args.out)
    if args.pairs:
        return _run_yfcc(args, predictor, out)
    if args.data == "synthetic":
        cfg = SyntheticConfig(
            height=args.size[0], width=args.size[1], num_pairs=args.num_pairs, seed=1, photos=HELD_OUT_PHOTOS
        )
        dataset: torch.utils.data.Dataset = SyntheticHomographies(cfg)
        protocol = "homography (synthetic, held-out photos)"
    else:
        dataset = HPatches(args.data, max_size=args.max_size)
        protocol = "homography (HPatches)"
    rows = _homography_rows(predictor, dataset, args.max_length)
    table = summarise_homography(rows)
    if args.data != "synthetic":
        for subset in ("i", "v"):
            part = [r for r in rows if r["scene_type"] == subset]
            if part:
                table.update({f"{subset}_{k}": v for k, v in summarise_homography(part).items()})
    _print_homography(table, len(rows))
    save_csv(out / "pairs.csv", rows)
    save_json(out / "metrics.json", {"protocol": protocol, "num_pairs": len(rows), **table})
    return table


def _run_yfcc(args: argparse.Namespace, predictor: Predictor, out: Path) -> dict[str, float]:
    opt = argparse.Namespace(
        input_pairs=args.pairs,
        input_dir=args.data,
        output_dir=str(out),
        max_length=args.max_length,
        resize=list(args.resize),
        resize_float=True,
        max_keypoints=args.max_keypoints or 2048,
        keypoint_threshold=args.keypoint_threshold,
        nms_radius=args.nms_radius,
        use_ransac=True,
        viz=False,
        eval=True,
        cache=False,
        show_keypoints=False,
        viz_extension="png",
        opencv_display=False,
        shuffle=False,
        force_cpu=True,
        pose_estimator=args.pose_estimator,
        results_json=str(out / "metrics.json"),
    )
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data: YFCC image root not found: {args.data}")
    table = match_pairs.run(opt, model=predictor) or {}
    rows = []
    for pair in match_pairs.read_pairs(args.pairs, require_gt=True)[: None if args.max_length < 0 else args.max_length]:
        path = out / f"{pair.stem}_evaluation.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                rows.append(
                    {
                        "name": pair.stem,
                        "error_t": float(data["error_t"]),
                        "error_R": float(data["error_R"]),
                        "precision": float(data["precision"]),
                        "matching_score": float(data["matching_score"]),
                        "num_correct": int(data["num_correct"]),
                    }
                )
    save_csv(out / "pairs.csv", rows)
    return table
