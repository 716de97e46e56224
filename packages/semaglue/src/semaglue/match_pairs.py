"""``semaglue match-pairs``: the authors' ``match_pairs.py`` (SuperGlue's script) — match image pairs, dump
``*_matches.npz``, and with ``--eval`` score relative pose on pairs with ground truth (YFCC protocol).

Per pair (``path0 path1 [rot0 rot1 K0(9) K1(9) T_0to1(16)]``) the outputs in ``--output_dir`` are
``{stem0}_{stem1}_matches.npz`` (keypoints0, keypoints1, matches, match_confidence) and
``{stem0}_{stem1}_evaluation.npz`` (error_t, error_R, precision, matching_score, num_correct, epipolar_errors,
plus ``pose_estimator``); with ``--viz`` ``_matches.{png,pdf}`` and ``_evaluation.{png,pdf}``.
With ``--cache`` existing files are reused; an evaluation file is reused only when it was made with the same
``--pose_estimator``; when every pair's matches are cached, no network is built and no weights are needed.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from semaglue import metrics
from semaglue.geometry import (
    POSE_ESTIMATORS,
    estimate_pose,
    read_gray_image,
    rotate_intrinsics,
    rotate_relative_pose,
    scale_intrinsics,
)
from semaglue.model.layers import IMPLS, set_impl
from semaglue.outputs import save_json, save_npz
from semaglue.viz import error_colormap, make_matching_plot, save_plot

EVAL_FIELDS = 38
RESULTS_JSON = "evaluation_results.json"


def str2bool(value: str) -> bool:
    """argparse type for ``true/false`` flags (SuperGlue's ``--use_ransac``)."""
    lowered = value.lower()
    if lowered in ("yes", "true", "t", "y", "1"):
        return True
    if lowered in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got {value!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of the authors' script (several are accepted but unused, as in theirs) plus ours."""
    add = parser.add_argument
    add("--input_pairs", type=str, default="assets/scannet_sample_pairs_with_gt.txt", help="path to the pair list")
    add("--input_dir", type=str, default="assets/scannet_sample_images/", help="folder the pair paths are relative to")
    add("--output_dir", type=str, default="dump_match_pairs/", help="where matches, evaluations and plots go")
    add("--max_length", type=int, default=-1, help="only the first N pairs (-1: all)")
    add(
        "--impl",
        choices=IMPLS,
        default="fast",
        help="fast: exact fast path; reference: the authors' operations in their order (default: fast)",
    )
    add(
        "--resize",
        type=int,
        nargs="+",
        default=[640, 480],
        help="W H, or one value for the longer side, or -1 to keep the size",
    )
    add("--resize_float", action="store_true", help="resize after converting the image to float")
    add("--weight_type", choices={"indoor", "outdoor"}, default="indoor", help="accepted, unused (as in the authors')")
    add("--max_keypoints", type=int, default=1024, help="SuperPoint keypoints per image (-1: all)")
    add("--keypoint_threshold", type=float, default=0.005, help="SuperPoint detection threshold")
    add("--nms_radius", type=int, default=4, help="SuperPoint NMS radius (pixels)")
    add("--sinkhorn_iterations", type=int, default=20, help="accepted, unused (SemaGlue has no Sinkhorn)")
    add("--match_threshold", type=float, default=0.0, help="accepted, unused")
    add("--filter_threshold", type=float, default=0.0, help="accepted, unused: the matcher keeps 0.1 (authors')")
    add("--use_ransac", type=str2bool, default=True, help="estimate the pose from matches (false: unsupported)")
    add("--viz", action="store_true", help="write match plots (and evaluation plots with --eval)")
    add("--eval", action="store_true", help="evaluate relative pose (the pair list needs 38 fields per line)")
    add("--fast_viz", action="store_true", help="OpenCV plots (all plots are drawn with OpenCV here)")
    add("--cache", action="store_true", help="reuse existing *_matches.npz / *_evaluation.npz / plots")
    add("--show_keypoints", action="store_true", help="draw all detected keypoints in the plots")
    add("--viz_extension", type=str, default="png", choices=["png", "pdf"], help="plot file type")
    add("--opencv_display", action="store_true", help="also show the plots in an OpenCV window")
    add("--shuffle", action="store_true", help="shuffle the pairs (random.Random(0)) before --max_length")
    add("--force_cpu", action="store_true", help="run on CPU even when CUDA is available")
    add(
        "--pose_estimator",
        choices=POSE_ESTIMATORS,
        default="ransac",
        help="ransac: cv2.RANSAC (published table); magsac: cv2.USAC_MAGSAC (authors' code); dlt: 8-point, no RANSAC",
    )
    add("--superpoint_weights", type=str, default=None, help="superpoint_v1.pth (needed unless all pairs are cached)")
    add("--segnext_weights", type=str, default=None, help="segnext_tiny_512x512_ade_160k.pth")
    add("--matcher_weights", type=str, default=None, help="checkpoint_best.tar")
    add("--results_json", type=str, default=None, help=f"table JSON path (default: <output_dir>/{RESULTS_JSON})")


@dataclass
class Pair:
    """One line of the pair list."""

    name0: str
    name1: str
    rot0: int = 0
    rot1: int = 0
    K0: np.ndarray | None = None
    K1: np.ndarray | None = None
    T_0to1: np.ndarray | None = None

    @property
    def stem(self) -> str:
        return f"{Path(self.name0).stem}_{Path(self.name1).stem}"


def read_pairs(path: str | Path, require_gt: bool = False) -> list[Pair]:
    """Parse a pair list (``yfcc_test_pairs_with_gt.txt`` format); ``require_gt`` needs all 38 fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--input_pairs: pair list not found: {path}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: a pair line needs at least two image paths")
        if require_gt and len(fields) != EVAL_FIELDS:
            raise ValueError(f"{path}:{number}: --eval needs {EVAL_FIELDS} fields per line, got {len(fields)}")
        pair = Pair(fields[0], fields[1])
        if len(fields) >= 4:
            pair.rot0, pair.rot1 = int(fields[2]), int(fields[3])
        if len(fields) == EVAL_FIELDS:
            try:
                values = np.array(fields[4:], dtype=float)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: non-numeric intrinsics/pose ({exc})") from None
            pair.K0, pair.K1 = values[:9].reshape(3, 3), values[9:18].reshape(3, 3)
            pair.T_0to1 = values[18:].reshape(4, 4)
        pairs.append(pair)
    return pairs


def load_matches(path: Path) -> dict[str, np.ndarray]:
    """A ``*_matches.npz`` dump (keypoints0, keypoints1, matches, match_confidence), validated."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in ("keypoints0", "keypoints1", "matches", "match_confidence")}
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a valid matches file ({exc})") from None
    if len(out["matches"]) != len(out["keypoints0"]) or len(out["match_confidence"]) != len(out["keypoints0"]):
        raise ValueError(f"{path}: matches/match_confidence length differs from keypoints0")
    if (out["matches"] >= len(out["keypoints1"])).any():
        raise ValueError(f"{path}: a match index exceeds the number of keypoints1")
    return out


def evaluate_pair(
    pair: Pair,
    scales0: tuple[float, float],
    scales1: tuple[float, float],
    shape0: tuple[int, int],
    shape1: tuple[int, int],
    matches: dict[str, np.ndarray],
    pose_estimator: str,
) -> dict[str, np.ndarray]:
    """Epipolar precision, matching score and pose errors of one pair (the authors' ``_evaluation.npz`` content)."""
    if pair.K0 is None or pair.K1 is None or pair.T_0to1 is None:
        raise ValueError(f"pair {pair.stem}: no ground truth (K0, K1, T_0to1) to evaluate against")
    K0, K1 = scale_intrinsics(pair.K0, scales0), scale_intrinsics(pair.K1, scales1)
    T_0to1 = pair.T_0to1
    if pair.rot0 or pair.rot1:
        K0 = rotate_intrinsics(K0, shape0, pair.rot0)
        K1 = rotate_intrinsics(K1, shape1, pair.rot1)
        T_0to1 = rotate_relative_pose(T_0to1, pair.rot0, pair.rot1)
    kpts0, kpts1, m = matches["keypoints0"], matches["keypoints1"], matches["matches"]
    valid = m > -1
    mkpts0, mkpts1 = kpts0[valid], kpts1[m[valid]]
    epi_errs = metrics.compute_epipolar_error(mkpts0, mkpts1, T_0to1, K0, K1)
    correct = epi_errs < metrics.EPIPOLAR_THRESHOLD
    ret = estimate_pose(mkpts0, mkpts1, K0, K1, thresh=1.0, conf=0.99999, method=pose_estimator)  # type: ignore[arg-type]
    if ret is None:
        err_t, err_R = np.inf, np.inf
    else:
        err_t, err_R = metrics.compute_pose_error(T_0to1, ret[0], ret[1])
    return {
        "error_t": np.float64(err_t),
        "error_R": np.float64(err_R),
        "precision": np.float64(metrics.precision(correct)),
        "matching_score": np.float64(metrics.matching_score(correct, len(kpts0))),
        "num_correct": np.int64(np.sum(correct)),
        "epipolar_errors": epi_errs,
        "pose_estimator": np.array(pose_estimator),
    }


def _cached_eval(path: Path, pose_estimator: str) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "pose_estimator" not in data.files or str(data["pose_estimator"]) != pose_estimator:
            return None
        return {k: data[k] for k in data.files}


def _build_network(opt: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    from semaglue.checkpoint import load_matching
    from semaglue.config import MatchingConfig, SuperPointConfig

    missing = [f"--{n}" for n in ("superpoint_weights", "segnext_weights", "matcher_weights") if not getattr(opt, n)]
    if missing:
        raise ValueError(f"matching needs the network weights; pass {', '.join(missing)}")
    config = MatchingConfig(
        superpoint=SuperPointConfig(
            nms_radius=opt.nms_radius, keypoint_threshold=opt.keypoint_threshold, max_keypoints=opt.max_keypoints
        )
    )
    model = load_matching(opt.superpoint_weights, opt.segnext_weights, opt.matcher_weights, config)
    return set_impl(model, getattr(opt, "impl", "fast")).to(device).eval()


def _show(canvas: np.ndarray, title: str) -> None:
    try:
        cv2.imshow(title, canvas)
        cv2.waitKey(1)
    except cv2.error as exc:
        raise ValueError(f"--opencv_display: this OpenCV build cannot open windows ({str(exc).strip()[:80]})") from None


class PairFailures(ValueError):
    """Some pairs failed (each was reported on stderr); the others were processed."""


def run(opt: argparse.Namespace, model: Any = None) -> dict[str, float] | None:
    """Run the script; returns the evaluation table (percent) with ``--eval``, else ``None``. ``model``: a
    callable with the :class:`semaglue.model.Matching` interface (default: built from the ``--*_weights`` flags).

    A pair that fails (unreadable image, bad cached file, ...) is reported on stderr and skipped; the others are
    processed and summarised, then :class:`PairFailures` is raised naming the first failure.
    """
    if len(opt.resize) == 2 and opt.resize[1] == -1:
        opt.resize = opt.resize[:1]
    if len(opt.resize) > 2:
        raise ValueError(f"--resize: give 1 or 2 values, got {opt.resize}")
    if opt.eval and not opt.use_ransac:
        raise ValueError("--use_ransac false needs an essential-matrix prediction, which SemaGlue does not output")
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    pairs = read_pairs(opt.input_pairs, require_gt=opt.eval)
    if opt.shuffle:
        random.Random(0).shuffle(pairs)
    if opt.max_length > -1:
        pairs = pairs[: min(len(pairs), opt.max_length)]
    if not pairs:
        raise ValueError(f"--input_pairs: {opt.input_pairs} lists no pairs (after --max_length {opt.max_length})")
    output_dir = Path(opt.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not opt.force_cpu else "cpu")
    needs_network = any(not (opt.cache and (output_dir / f"{p.stem}_matches.npz").exists()) for p in pairs)
    if model is None and needs_network:
        model = _build_network(opt, device)
    failures: list[str] = []
    for i, pair in enumerate(pairs):
        try:
            _process_pair(opt, pair, model, device)
        except (ValueError, OSError, cv2.error) as exc:
            message = (
                f"pair {pair.stem}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            )
            print(f"semaglue match-pairs: {message} (skipped)", file=sys.stderr)
            failures.append(message)
        print(f"Finished pair {i + 1:5} of {len(pairs):5}")
    table = None
    if opt.eval:
        done = [p for p in pairs if (output_dir / f"{p.stem}_evaluation.npz").exists()]
        if done:
            table = summarise(done, output_dir, opt.results_json or output_dir / RESULTS_JSON, opt.pose_estimator)
    if failures:
        raise PairFailures(f"{len(failures)} of {len(pairs)} pairs failed; first: {failures[0]}")
    return table


def _process_pair(opt: argparse.Namespace, pair: Pair, model: Any, device: torch.device) -> None:
    """Match, evaluate and plot one pair (reusing cached files with ``--cache``)."""
    input_dir, output_dir, ext = Path(opt.input_dir), Path(opt.output_dir), opt.viz_extension
    matches_path = output_dir / f"{pair.stem}_matches.npz"
    eval_path = output_dir / f"{pair.stem}_evaluation.npz"
    viz_path = output_dir / f"{pair.stem}_matches.{ext}"
    viz_eval_path = output_dir / f"{pair.stem}_evaluation.{ext}"
    matches = load_matches(matches_path) if opt.cache and matches_path.exists() else None
    evaluation = _cached_eval(eval_path, opt.pose_estimator) if opt.cache and opt.eval else None
    do_viz = opt.viz and not (opt.cache and viz_path.exists())
    do_viz_eval = opt.viz and opt.eval and not (opt.cache and viz_eval_path.exists())
    if matches is not None and (evaluation is not None or not opt.eval) and not do_viz and not do_viz_eval:
        return
    image0, inp0, scales0 = read_gray_image(input_dir / pair.name0, opt.resize, pair.rot0, opt.resize_float)
    image1, inp1, scales1 = read_gray_image(input_dir / pair.name1, opt.resize, pair.rot1, opt.resize_float)
    if matches is None:
        if model is None:  # pragma: no cover - run() builds the network whenever a pair is not cached
            raise ValueError("no network to match with")
        with torch.no_grad():
            pred = model({"image0": inp0.to(device), "image1": inp1.to(device)})
        matches = {
            "keypoints0": pred["keypoints0"][0].cpu().numpy().astype(np.float32),
            "keypoints1": pred["keypoints1"][0].cpu().numpy().astype(np.float32),
            "matches": pred["matches0"][0].cpu().numpy().astype(np.int64),
            "match_confidence": pred["matching_scores0"][0].cpu().numpy().astype(np.float32),
        }
        save_npz(matches_path, matches)
    kpts0, kpts1, m, conf = (matches[k] for k in ("keypoints0", "keypoints1", "matches", "match_confidence"))
    valid = m > -1
    mkpts0, mkpts1, mconf = kpts0[valid], kpts1[m[valid]], conf[valid]
    if opt.eval and evaluation is None:
        evaluation = evaluate_pair(pair, scales0, scales1, image0.shape, image1.shape, matches, opt.pose_estimator)
        save_npz(eval_path, evaluation)
    if do_viz:
        text = ["SemaGlue", f"Keypoints: {len(kpts0)}:{len(kpts1)}", f"Matches: {len(mkpts0)}"]
        small = [f"Keypoint Threshold: {opt.keypoint_threshold:.4f}", f"Image Pair: {pair.stem}"]
        canvas = make_matching_plot(
            image0, image1, kpts0, kpts1, mkpts0, mkpts1, error_colormap(mconf), text, small, opt.show_keypoints
        )
        save_plot(canvas, viz_path)
        if opt.opencv_display:
            _show(canvas, "Matches")
    if do_viz_eval and evaluation is not None:
        correct = np.clip(evaluation["epipolar_errors"] / 1e-3, 0, 1)
        text = [
            "SemaGlue",
            f"Rotation error {float(evaluation['error_R']):.1f} deg",
            f"Translation error {float(evaluation['error_t']):.1f} deg",
            f"inliers {int(evaluation['num_correct'])}/{len(mkpts0)}",
        ]
        small = [f"Pose estimator: {opt.pose_estimator}", f"Image Pair: {pair.stem}"]
        canvas = make_matching_plot(
            image0, image1, kpts0, kpts1, mkpts0, mkpts1, error_colormap(1 - correct), text, small, opt.show_keypoints
        )
        save_plot(canvas, viz_eval_path)
        if opt.opencv_display:
            _show(canvas, "Evaluation")


def summarise(pairs: list[Pair], output_dir: Path, json_path: str | Path, pose_estimator: str) -> dict[str, float]:
    """Aggregate every pair's ``_evaluation.npz``: print the authors' table and write it as JSON."""
    err_t, err_R, prec, ms = [], [], [], []
    for pair in pairs:
        path = output_dir / f"{pair.stem}_evaluation.npz"
        if not path.exists():
            raise FileNotFoundError(f"evaluation file missing for pair {pair.stem}: {path}")
        with np.load(path, allow_pickle=False) as data:
            err_t.append(float(data["error_t"]))
            err_R.append(float(data["error_R"]))
            prec.append(float(data["precision"]))
            ms.append(float(data["matching_score"]))
    table = metrics.aggregate_results(err_t, err_R, prec, ms)
    print(metrics.format_table(table, len(pairs)))
    payload = {"num_pairs": len(pairs), "pose_estimator": pose_estimator, **table}
    save_json(json_path, payload)
    return table
