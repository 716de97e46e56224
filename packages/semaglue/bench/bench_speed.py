"""SemaGlue inference speed: reference vs exact fast path vs approximate modes, in one process (issue 18).

Cases (the authors' timing, original_speed.md: 1600×1200 pair with 2048 keypoints 34.5 s on 2 cores; SuperPoint
14.1 s, SegNeXt 9.6 s, matcher 14.1 s):

- ``pipeline``: SuperPoint (YFCC settings: nms 3, threshold 0.005) + SegNeXt MSCAN-T + the 9-layer matcher on the
  ``stereo_motorcycle`` pair (grey, [0, 1]); sizes ``paper`` 1600×1200 with 2048 keypoints and 640×480 with 1024
  keypoints (nms 4, the script's other setting), ``small`` 320×240 with 512 keypoints.
- ``superpoint``, ``segnext``: both images through each network; ``matcher``: the matcher alone on the pipeline's
  keypoints and semantic maps.

Seeded random weights (SuperPoint He-normal so that the heat-map has peaks). Rows: ``reference`` (the authors'
operations in their order), ``fast`` (exact: parity within the fixture tolerance 1e-4 × max(1, max |ref|), same
keypoints and matches), then the APPROXIMATE modes: ``fast+bf16`` autocast and, for the matcher and the pipeline,
``fast+adaptive`` (LightGlue's depth_confidence 0.95 / width_confidence 0.99; with random weights it only shows the
cost of the checks). ``--accuracy`` trains the demo model (``semaglue demo``'s recipe, about 1-2 min) and scores
each mode on the demo's 48 held-out synthetic homography pairs: H_AUC@5px and precision (%) and their change from the
fp32 reference.

    .venv/bin/python packages/semaglue/bench/bench_speed.py --sizes small --threads 1 --no-save
    .venv/bin/python packages/semaglue/bench/bench_speed.py --sizes paper --threads 2 --accuracy
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
import skimage.data
import torch

from semaglue.config import MatchingConfig
from semaglue.model import Matching, set_impl
from semcommon.bench import BenchRow, Variant, add_bench_arguments, bench_device, run_bench, time_variants
from semcommon.runtime import autocast

PACKAGE = "semaglue"
RTOL = 1e-4  # fixture README
SIZES = {
    "small": [(320, 240, 512, 3)],
    "paper": [(1600, 1200, 2048, 3), (640, 480, 1024, 4)],
}
SIZES["all"] = SIZES["small"] + SIZES["paper"]
ADAPTIVE = {"depth_confidence": 0.95, "width_confidence": 0.99}


def paper_model(keypoints: int, nms: int, device: torch.device) -> Matching:
    """The YFCC configuration with seeded random weights (SuperPoint convolutions He-normal)."""
    torch.manual_seed(0)
    config = MatchingConfig()
    config.superpoint = dataclasses.replace(config.superpoint, max_keypoints=keypoints, nms_radius=nms)
    model = Matching(config)
    for module in model.superpoint.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    return model.eval().to(device)


def stereo_pair(width: int, height: int, device: torch.device) -> dict[str, torch.Tensor]:
    """``stereo_motorcycle`` left/right, grey, resized (float, bilinear) to W×H: ``image0/1`` 1×1×H×W."""
    left, right, _ = skimage.data.stereo_motorcycle()
    out = {}
    for i, im in enumerate((left, right)):
        grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        out[f"image{i}"] = torch.from_numpy(cv2.resize(grey, (width, height)))[None, None].to(device)
    return out


def matcher_inputs(model: Matching, data: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """The pipeline's features of ``data`` (fast path) and the matcher's input dict built from them."""
    with torch.no_grad():
        feats = set_impl(model, "fast")(data)
    height, width = data["image0"].shape[-2:]
    matcher_in = {k: feats[k] for k in ("keypoints0", "keypoints1", "descriptors0", "descriptors1")}
    matcher_in |= {"feature_map0": feats["feature_map0"], "feature_map1": feats["feature_map1"]}
    matcher_in |= {"image_size0": torch.tensor([height, width]), "image_size1": torch.tensor([height, width])}
    return feats, matcher_in


def _call(model: Matching, impl: str, fn: Callable[[], dict], precision: str = "fp32", **matcher) -> Callable:
    """A timed call: ``impl`` on every network, ``matcher`` config overrides (adaptive mode), autocast."""
    base = model.matcher.config

    def run() -> dict:
        set_impl(model, impl)
        model.matcher.config = dataclasses.replace(base, **matcher) if matcher else base
        try:
            with torch.no_grad(), autocast(next(model.parameters()).device, precision):
                return fn()
        finally:
            model.matcher.config = base

    return run


def _fit(value: object, like: object) -> object:
    """``value`` cut/padded to the shapes of ``like`` (padding taken from ``like``): approximate modes may find other
    keypoint counts, so their difference is reported over the common entries."""
    if isinstance(like, dict):
        return {k: _fit(value[k], like[k]) for k in like}  # type: ignore[index]
    if isinstance(like, (list, tuple)):
        return [_fit(v, w) for v, w in zip(value, like, strict=True)]  # type: ignore[call-overload]
    out = like.clone()  # type: ignore[union-attr]
    common = tuple(slice(0, min(a, b)) for a, b in zip(value.shape, like.shape, strict=True))  # type: ignore[union-attr]
    out[common] = value[common].to(out.dtype)  # type: ignore[index]
    return out


def _pipeline_outputs(out: dict) -> dict:
    return {k: out[k].float() for k in ("keypoints0", "keypoints1", "matches0", "matches1", "matching_scores0")}


def rows_for_size(
    width: int,
    height: int,
    keypoints: int,
    nms: int,
    device: torch.device,
    args: argparse.Namespace,
    accuracy: dict[str, dict[str, float]] | None,
) -> list[BenchRow]:
    model = paper_model(keypoints, nms, device)
    data = stereo_pair(width, height, device)
    images = torch.cat([data["image0"], data["image1"]])
    feats, matcher_in = matcher_inputs(model, data)
    size = f"{width}x{height}/{keypoints}kp"
    n0, n1 = feats["keypoints0"].shape[1], feats["keypoints1"].shape[1]

    def atol(value: float) -> float:
        return RTOL * max(1.0, value)

    cases: dict[str, tuple[Callable[[], dict], Callable[[dict], object], float, bool]] = {
        "pipeline": (lambda: model(data), _pipeline_outputs, atol(max(width, height)), True),
        "superpoint": (lambda: model.superpoint({"image": images}), lambda o: o, atol(1.0), False),
        "segnext": (lambda: model.segment(images), lambda o: o, atol(float(feats["feature_map0"].abs().max())), False),
        "matcher": (
            lambda: model.matcher(matcher_in),
            lambda o: {k: o[k].float() for k in ("matches0", "matches1", "matching_scores0")},
            atol(1.0),
            True,
        ),
    }
    rows: list[BenchRow] = []
    for case, (fn, pick, tol, matcher_case) in cases.items():
        ref = pick(_call(model, "reference", fn)())
        variants = [
            Variant("reference", lambda fn=fn, pick=pick: pick(_call(model, "reference", fn)()), atol=tol),
            Variant("fast", lambda fn=fn, pick=pick: pick(_call(model, "fast", fn)()), atol=tol),
            Variant(
                "fast+bf16",
                lambda fn=fn, pick=pick, ref=ref: _fit(pick(_call(model, "fast", fn, "bf16")()), ref),
                exact=False,
                accuracy=(accuracy or {}).get("bf16"),
                note="autocast bf16",
            ),
        ]
        if matcher_case:
            variants.append(
                Variant(
                    "fast+adaptive",
                    lambda fn=fn, pick=pick, ref=ref: _fit(pick(_call(model, "fast", fn, **ADAPTIVE)()), ref),
                    exact=False,
                    accuracy=(accuracy or {}).get("adaptive"),
                    note="depth 0.95 / width 0.99 (random weights: cost of the checks only)",
                )
            )
        rows += time_variants(
            PACKAGE,
            case,
            size,
            width * height,
            variants,
            device=device,
            warmup=args.warmup,
            repeats=args.repeats,
        )
        print(
            f"{case} {size}: {n0}+{n1} keypoints; "
            + ", ".join(f"{r.impl} {r.median_ms:.0f} ms" for r in rows[-len(variants) :])
        )
    return rows


def demo_accuracy(device: torch.device) -> dict[str, dict[str, float]]:
    """Train the demo model (``semaglue demo``'s recipe), then H_AUC@5px / precision of each mode on its held-out
    pairs, and the change from fp32 (``d_``)."""
    from semaglue.demo import DemoConfig, _model_rows, train_demo_model
    from semaglue.train import summarise_homography

    model, val_items = train_demo_model(DemoConfig(), device, print)
    modes = {"reference": ("reference", "fp32", {}), "fast": ("fast", "fp32", {}), "bf16": ("fast", "bf16", {})}
    modes["adaptive"] = ("fast", "fp32", ADAPTIVE)
    base = model.matcher.config
    scores: dict[str, dict[str, float]] = {}
    for name, (impl, precision, matcher) in modes.items():
        set_impl(model, impl)
        model.matcher.config = dataclasses.replace(base, **matcher)
        with autocast(device, precision):
            table = summarise_homography(_model_rows(model, val_items, device)[0])
        scores[name] = {"H_AUC@5px": table["H_AUC@5px"], "precision": table["precision"]}
    model.matcher.config = base
    ref = scores["reference"]
    for name in ("bf16", "adaptive"):
        scores[name] |= {f"d_{k}": scores[name][k] - ref[k] for k in ref}
    print("demo accuracy (48 held-out pairs):", scores)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(parser)
    parser.add_argument("--accuracy", action="store_true", help="train the demo model and score the approx. modes")
    args = parser.parse_args()
    device = bench_device(args)
    accuracy = demo_accuracy(device) if args.accuracy else None
    rows: list[BenchRow] = []
    for width, height, keypoints, nms in SIZES[args.sizes]:
        rows += rows_for_size(width, height, keypoints, nms, device, args, accuracy)
    run_bench(PACKAGE, rows, args)


if __name__ == "__main__":
    main()
