"""``semaglue predict``: match your own image pairs.

``semaglue predict IMG0 IMG1 [--out DIR]`` or ``semaglue predict --pairs LIST --input_dir DIR [--out DIR]`` (a
pair list holds ``path0 path1`` per line, extra fields ignored, as in the authors' ``match_pairs.py``).

Per pair, in ``--out``:

- ``{stem0}_{stem1}_matches.npz`` — the authors' format: ``keypoints0`` (K0×2 float32), ``keypoints1``,
  ``matches`` (K0 int64, index into keypoints1 or -1), ``match_confidence`` (K0 float32). Keypoints are pixel
  ``(x, y)`` of the *network input* (the image resized by ``--resize``, as the authors store them); multiply by
  ``scale0``/``scale1`` (stored too: original / resized ``(sx, sy)``) for original-image pixels.
- ``{stem0}_{stem1}_matches.png`` — side-by-side match plot coloured by confidence (red 0 -> green 1) with the
  authors' text overlay (method, keypoint counts, match count; threshold and pair name).

Weights (``--checkpoint``): our run checkpoints (``RUN_DIR/checkpoints/last.pt``: SegNeXt + matcher + keypoint
settings, SIFT needs nothing else) or the authors' ``checkpoint_best.tar`` together with ``--superpoint_weights``
(``superpoint_v1.pth``) and ``--segnext_weights`` (``segnext_tiny_512x512_ade_160k.pth``) — the equivalent of
the authors' ``demo.py``. Pairs whose images have equal sizes are matched together in batches of
``--batch_size`` (keypoint sets padded with masks). Files are written under temporary names and renamed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semaglue.checkpoint import load_pretrained, run_config
from semaglue.config import SegNextConfig, SemaGlueConfig
from semaglue.features import FeatureExtractor
from semaglue.geometry import read_gray_image
from semaglue.model import FeatureMatcher, SemaGlue, pad_keypoints, set_impl
from semaglue.model.layers import check_impl
from semaglue.outputs import save_npz
from semaglue.viz import error_colormap, make_matching_plot, save_plot
from semcommon.checkpoint import CheckpointError, load_checkpoint, load_state_dict_into
from semcommon.runtime import add_inference_arguments, autocast, progress, resolve_device


@dataclass
class PairInput:
    """One pair to match: paths and, once read, the network inputs."""

    path0: Path
    path1: Path

    @property
    def stem(self) -> str:
        return f"{self.path0.stem}_{self.path1.stem}"


class Predictor:
    """Keypoints (SuperPoint or SIFT) + frozen SegNeXt + SemaGlue, on a device, in eval mode."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        model: FeatureMatcher,
        device: torch.device,
        impl: str = "fast",
        precision: str = "fp32",
        compile: bool = False,
    ) -> None:
        """``impl``: ``fast`` (exact fast path) or ``reference``; ``precision`` ``fp32`` | ``bf16`` | ``fp16``
        (autocast, approximate); ``compile``: ``torch.compile`` the matcher (opt-in)."""
        self.extractor, self.model, self.device = extractor, model.to(device).eval(), device
        set_impl(self.model, impl)
        if extractor.superpoint is not None:
            set_impl(extractor.superpoint, impl)
        self.precision = precision
        autocast(device, precision)  # validates the name
        self.forward = torch.compile(self.model) if compile else self.model

    def set_adaptive(self, depth_confidence: float, width_confidence: float) -> None:
        """The matcher's APPROXIMATE adaptive mode (LightGlue's early stop / pruning; values <= 0 switch it off)."""
        for name, value in (("depth_confidence", depth_confidence), ("width_confidence", width_confidence)):
            if value > 1:
                raise ValueError(f"--{name} must be <= 1 (or <= 0 for off), got {value}")
        matcher = self.model.matcher
        matcher.config = replace(matcher.config, depth_confidence=depth_confidence, width_confidence=width_confidence)

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``1×1×H×W`` in [0, 1] -> keypoints K×2, scores K, descriptors D×K (CPU tensors)."""
        feats = self.extractor(image[0, 0].cpu().numpy())
        return {k: torch.from_numpy(v) for k, v in feats.items()}

    @torch.no_grad()
    def match(self, images0: list[torch.Tensor], images1: list[torch.Tensor]) -> list[dict[str, np.ndarray]]:
        """Pairs of ``1×1×H×W`` images (all image0 one size, all image1 one size) -> per pair the authors' npz
        entries. Pairs are matched in one padded batch; a pair with an image without keypoints has no matches."""
        feats0 = [self.features(im) for im in images0]
        feats1 = [self.features(im) for im in images1]
        results = [_unmatched(f0, f1) for f0, f1 in zip(feats0, feats1, strict=True)]
        live = [
            b
            for b, (f0, f1) in enumerate(zip(feats0, feats1, strict=True))
            if len(f0["keypoints"]) and len(f1["keypoints"])
        ]
        if not live:
            return results
        batch: dict[str, torch.Tensor] = {}
        for i, (feats, images) in enumerate(((feats0, images0), (feats1, images1))):
            f = [feats[b] for b in live]
            kpts, _, desc, mask = pad_keypoints(
                [x["keypoints"] for x in f], [x["scores"] for x in f], [x["descriptors"] for x in f]
            )
            batch[f"image{i}"] = torch.cat([images[b] for b in live]).to(self.device)
            batch[f"keypoints{i}"], batch[f"descriptors{i}"] = kpts.to(self.device), desc.to(self.device)
            if not bool(mask.all()):
                batch[f"mask{i}"] = mask.to(self.device)
        with autocast(self.device, self.precision):
            pred = self.forward(batch)
        for row, b in enumerate(live):
            n0 = len(feats0[b]["keypoints"])
            results[b]["matches"] = pred["matches0"][row, :n0].cpu().numpy().astype(np.int64)
            results[b]["match_confidence"] = pred["matching_scores0"][row, :n0].float().cpu().numpy()
        return results

    def match_one(self, image0: torch.Tensor, image1: torch.Tensor) -> dict[str, np.ndarray]:
        return self.match([image0], [image1])[0]

    def __call__(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The :class:`semaglue.model.Matching` interface for one pair (used by ``match_pairs`` / ``evaluate``)."""
        result = self.match_one(data["image0"], data["image1"])
        return {
            "keypoints0": torch.from_numpy(result["keypoints0"])[None],
            "keypoints1": torch.from_numpy(result["keypoints1"])[None],
            "matches0": torch.from_numpy(result["matches"])[None],
            "matching_scores0": torch.from_numpy(result["match_confidence"])[None],
        }


def _unmatched(f0: dict[str, torch.Tensor], f1: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    n0 = len(f0["keypoints"])
    return {
        "keypoints0": f0["keypoints"].numpy().astype(np.float32),
        "keypoints1": f1["keypoints"].numpy().astype(np.float32),
        "matches": np.full(n0, -1, np.int64),
        "match_confidence": np.zeros(n0, np.float32),
    }


def load_predictor(
    checkpoint: str | Path,
    superpoint_weights: str | None = None,
    segnext_weights: str | None = None,
    max_keypoints: int | None = None,
    nms_radius: int = 3,
    keypoint_threshold: float = 0.005,
    device: str = "cpu",
    impl: str = "fast",
    precision: str = "fp32",
    compile: bool = False,
) -> Predictor:
    """A :class:`Predictor` from our run checkpoint or the authors' three files (see the module docstring).

    ``max_keypoints`` None keeps the checkpoint's setting (ours) or 2048 (authors', the YFCC setting);
    ``impl``/``precision``/``compile`` as in :class:`Predictor`.
    """
    speed = {"impl": check_impl(impl), "precision": precision, "compile": compile}
    dev = resolve_device(device)
    path = Path(checkpoint)
    obj = load_checkpoint(path)
    stored = obj.get("config") if isinstance(obj, dict) else None
    if isinstance(stored, dict) and isinstance(stored.get("features"), dict):
        features = dict(stored["features"])
        kind = features.get("kind", "sift")
        kind = ("superpoint" if features.get("superpoint_weights") else "sift") if kind == "auto" else kind
        matcher_cfg = run_config(obj, "matcher", SemaGlueConfig)
        segnext_cfg = run_config(obj, "segnext", SegNextConfig)
        model = FeatureMatcher(segnext_cfg, matcher_cfg)
        state = obj["model"] if isinstance(obj.get("model"), dict) else None
        if state is None:
            raise CheckpointError(f"{path}: no 'model' entry")
        load_state_dict_into(model, state, strict=True, source=str(path))
        extractor = FeatureExtractor(
            kind,
            features.get("max_keypoints", 512) if max_keypoints is None else max_keypoints,
            superpoint_weights or features.get("superpoint_weights"),
            features.get("nms_radius", nms_radius),
            features.get("keypoint_threshold", keypoint_threshold),
            dev,
        )
        return Predictor(extractor, model, dev, **speed)
    missing = [
        n for n, v in (("--superpoint_weights", superpoint_weights), ("--segnext_weights", segnext_weights)) if not v
    ]
    if missing:
        raise ValueError(f"--checkpoint {path} holds only the authors' matcher; also pass {' and '.join(missing)}")
    matcher = load_pretrained(path, "matcher")
    if not isinstance(matcher, SemaGlue):  # pragma: no cover - load_pretrained("matcher") builds SemaGlue
        raise CheckpointError(f"{path}: not a SemaGlue matcher")
    model = FeatureMatcher(SegNextConfig(), matcher.config)
    model.matcher = matcher
    load_pretrained(segnext_weights, model.segment)  # type: ignore[arg-type]
    extractor = FeatureExtractor(
        "superpoint",
        2048 if max_keypoints is None else max_keypoints,
        superpoint_weights,
        nms_radius,
        keypoint_threshold,
        dev,
    )
    return Predictor(extractor, model, dev, **speed)


def read_pair_list(path: str | Path, input_dir: str | Path) -> list[PairInput]:
    """``path0 path1 [...]`` per line, relative to ``input_dir``; a short line is named with its number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--pairs: pair list not found: {path}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: a pair line needs two image paths")
        pairs.append(PairInput(Path(input_dir) / fields[0], Path(input_dir) / fields[1]))
    if not pairs:
        raise ValueError(f"--pairs: {path} lists no pairs")
    return pairs


def add_predictor_arguments(parser: argparse.ArgumentParser) -> None:
    """The network and speed flags ``predict`` and ``evaluate`` share (read back by :func:`predictor_from_args`)."""
    add = parser.add_argument
    add("--superpoint_weights", help="superpoint_v1.pth (authors' checkpoint, or ours trained on SuperPoint)")
    add("--segnext_weights", help="segnext_tiny_512x512_ade_160k.pth (with the authors' checkpoint)")
    add("--max_keypoints", type=int, help="keypoints per image (default: the checkpoint's, or 2048)")
    add("--nms_radius", type=int, default=3, help="SuperPoint NMS radius (default: 3)")
    add("--keypoint_threshold", type=float, default=0.005, help="SuperPoint detection threshold")
    add("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    add(
        "--depth_confidence",
        type=float,
        default=-1.0,
        help="APPROXIMATE adaptive depth (LightGlue's, e.g. 0.95): stop when this fraction of points is confident",
    )
    add(
        "--width_confidence",
        type=float,
        default=-1.0,
        help="APPROXIMATE point pruning (LightGlue's, e.g. 0.99): drop confidently unmatchable points",
    )
    add_inference_arguments(parser)


def predictor_from_args(args: argparse.Namespace) -> Predictor:
    """The :class:`Predictor` the flags of :func:`add_predictor_arguments` describe."""
    predictor = load_predictor(
        args.checkpoint,
        args.superpoint_weights,
        args.segnext_weights,
        args.max_keypoints,
        args.nms_radius,
        args.keypoint_threshold,
        args.device,
        args.impl,
        args.precision,
        args.compile,
    )
    predictor.set_adaptive(args.depth_confidence, args.width_confidence)
    return predictor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("images", nargs="*", help="IMG0 IMG1 (or use --pairs)")
    add("--pairs", help="pair list: 'path0 path1' per line, relative to --input_dir")
    add("--input_dir", default=".", help="folder the --pairs paths are relative to (default: .)")
    add("--out", default="predictions", help="output folder (default: predictions)")
    add("--checkpoint", required=True, help="RUN_DIR/checkpoints/last.pt or the authors' checkpoint_best.tar")
    add("--resize", type=int, nargs="+", default=[1600], help="longer side, W H, or -1 (default: 1600, authors')")
    add("--resize_float", action="store_true", help="resize after converting to float (authors' YFCC setting)")
    add("--batch_size", type=int, default=4, help="pairs matched together when their sizes agree (default: 4)")
    add("--no_viz", action="store_true", help="skip the PNG plots")
    add_predictor_arguments(parser)


def _check_args(args: argparse.Namespace) -> list[PairInput]:
    if args.pairs and args.images:
        raise ValueError("give either IMG0 IMG1 or --pairs, not both")
    if args.pairs:
        pairs = read_pair_list(args.pairs, args.input_dir)
    elif len(args.images) == 2:
        pairs = [PairInput(Path(args.images[0]), Path(args.images[1]))]
    else:
        raise ValueError(f"give two images (IMG0 IMG1) or --pairs LIST, got {len(args.images)} image argument(s)")
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.max_keypoints is not None and args.max_keypoints == 0:
        raise ValueError("--max_keypoints must be > 0 or -1 (all)")
    if not 0 < len(args.resize) <= 2 or any(v == 0 or v < -1 for v in args.resize):
        raise ValueError(f"--resize: one value > 0 or -1, or W H, got {args.resize}")
    for pair in pairs:
        for p in (pair.path0, pair.path1):
            if not p.is_file():
                raise FileNotFoundError(f"image not found: {p}")
    return pairs


def _write(out: Path, pair: PairInput, result: dict[str, np.ndarray], images: tuple, scales: tuple, viz: bool) -> None:
    save_npz(
        out / f"{pair.stem}_matches.npz",
        {**result, "scale0": np.asarray(scales[0], np.float64), "scale1": np.asarray(scales[1], np.float64)},
    )
    if not viz:
        return
    kpts0, kpts1, m, conf = (result[k] for k in ("keypoints0", "keypoints1", "matches", "match_confidence"))
    valid = m > -1
    text = ["SemaGlue", f"Keypoints: {len(kpts0)}:{len(kpts1)}", f"Matches: {int(valid.sum())}"]
    small = [f"Keypoint Threshold: {0.005:.4f}", f"Image Pair: {pair.stem}"]
    canvas = make_matching_plot(
        images[0], images[1], kpts0, kpts1, kpts0[valid], kpts1[m[valid]], error_colormap(conf[valid]), text, small
    )
    save_plot(canvas, out / f"{pair.stem}_matches.png")


def run(args: argparse.Namespace) -> int:
    """Match every pair; returns the number of pairs written. A pair whose image cannot be read is reported and
    skipped (exit status 1 at the end)."""
    pairs = _check_args(args)
    predictor = predictor_from_args(args)
    out = Path(args.out)
    failures: list[str] = []
    written = 0
    for start in progress(
        range(0, len(pairs), args.batch_size), desc="matching", total=-(-len(pairs) // args.batch_size)
    ):
        loaded: list[tuple[PairInput, Any, Any]] = []
        for pair in pairs[start : start + args.batch_size]:
            try:
                read0 = read_gray_image(pair.path0, args.resize, 0, args.resize_float)
                read1 = read_gray_image(pair.path1, args.resize, 0, args.resize_float)
            except (ValueError, OSError) as exc:
                failures.append(f"pair {pair.stem}: {exc}")
                print(f"semaglue predict: pair {pair.stem}: {exc} (skipped)", file=sys.stderr)
                continue
            loaded.append((pair, read0, read1))
        groups: dict[tuple, list[tuple[PairInput, Any, Any]]] = {}
        for item in loaded:
            groups.setdefault((tuple(item[1][1].shape), tuple(item[2][1].shape)), []).append(item)
        for group in groups.values():
            results = predictor.match([g[1][1] for g in group], [g[2][1] for g in group])
            for (pair, read0, read1), result in zip(group, results, strict=True):
                _write(out, pair, result, (read0[0], read1[0]), (read0[2], read1[2]), not args.no_viz)
                written += 1
    if failures:
        raise ValueError(f"{len(failures)} of {len(pairs)} pairs failed; first: {failures[0]}")
    return written
