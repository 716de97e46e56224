"""SSP inference speed: reference vs exact fast path vs approximate modes, in one process (issue 18).

Cases (the authors' timed configurations, /work/shared/research/original_speed.md):

- ``image``: the image model, Hiera-S + UperNet(256), 8 classes, forward incl. the bicubic upsampling;
- ``video_step``: the SSP step at steady state with the homography given (encoder + decoder on the current frame,
  two warps, similarity block, fusion);
- ``video_step_reg``: the same step with DISK (2048 keypoints) + LightGlue + RANSAC registration (kornia; random
  weights, as the authors' timing: LightGlue runs all 9 layers). The reference describes both frames of the pair
  (the authors' registrator) and runs kornia's LightGlue as is; the fast path keeps the previous frame's DISK
  features and runs LightGlue's cross-attention through scaled_dot_product_attention;
- ``raft20``: RAFT (things) with 20 iterations in test mode.

Sizes: ``small`` 384×640, ``paper`` 736×1280. ``--large`` adds 4K rows (2176×3840 image model — H must be a
multiple of 32 —, 2160×3840 RAFT with the windowed correlation lookup) for the peak memory. Approximate modes:
bf16 autocast and (``--compile``) torch.compile. ``--accuracy CKPT`` scores them on the demo's held-out synthetic
clips with the demo's trained SSP model (``ssp demo`` writes ``ssp.pt``): mIoU and TC.

    .venv/bin/python packages/ssp/bench/bench_speed.py --sizes small --threads 1 --no-save
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable

import torch

from semcommon.bench import BenchRow, Variant, add_bench_arguments, bench_device, run_bench, time_variants
from semcommon.runtime import autocast
from ssp.config import VideoModelConfig
from ssp.model import RAFT, SSPVideoModel, build_image_model, compile_networks, set_impl
from ssp.model.registration import LearnedRegistrator, kornia_available

PACKAGE = "ssp"
SIZES = {"small": [(384, 640)], "paper": [(736, 1280)], "all": [(384, 640), (736, 1280)]}
ATOL = 1e-4  # fixture README: image model, SSP and RAFT parity tolerance


def _frames(size: tuple[int, int], device: torch.device, count: int = 2) -> list[torch.Tensor]:
    """Smooth random "frames" (ImageNet-normalised scale), 1×3×H×W each; frame t+1 is frame t shifted by 3 px."""
    generator = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(
        torch.randn(1, 3, size[0] // 16 + 2, size[1] // 16 + 2, generator=generator),
        size=(size[0] + 3 * count, size[1] + 3 * count),
        mode="bicubic",
    )
    return [base[..., 3 * t : 3 * t + size[0], 3 * t : 3 * t + size[1]].contiguous().to(device) for t in range(count)]


def _with_impl(model: torch.nn.Module, impl: str, fn: Callable[[], object], precision: str = "fp32"):
    device = next(model.parameters()).device

    def run() -> object:
        set_impl(model, impl)
        with torch.inference_mode(), autocast(device, precision):
            out = fn()
        return _as_float(out)

    return run


def _as_float(out: object) -> object:
    if isinstance(out, torch.Tensor):
        return out.float()
    if isinstance(out, (tuple, list)):
        return type(out)(_as_float(o) for o in out)
    return out


def _variants(
    model: torch.nn.Module,
    call: Callable[[torch.nn.Module], object],
    args: argparse.Namespace,
    accuracy: dict[str, dict[str, float]],
) -> list[Variant]:
    """reference, fast, and the approximate rows of the fast path: bf16 autocast and (``--compile``) torch.compile
    of a copy of the model. ``call(model)`` runs the timed work."""
    variants = [
        Variant("reference", _with_impl(model, "reference", lambda: call(model))),
        Variant("fast", _with_impl(model, "fast", lambda: call(model))),
    ]
    if not args.no_bf16:
        variants.append(Variant("fast+bf16", _with_impl(model, "fast", lambda: call(model), "bf16"), exact=False,
                                accuracy=accuracy.get("bf16"), note="bf16 autocast"))  # fmt: skip
    if args.compile:
        compiled = compile_networks(copy.deepcopy(model))
        run = _with_impl(compiled, "fast", lambda: call(compiled))
        note = "torch.compile (default mode)"
        variants.append(Variant("fast+compile", run, exact=False, accuracy=accuracy.get("compile"), note=note))
    return variants


def bench_image(size, device, args, accuracy) -> list[BenchRow]:
    torch.manual_seed(0)
    model = build_image_model("small").to(device).eval()
    (frame,) = _frames(size, device, 1)
    variants = _variants(model, lambda m: m(frame), args, accuracy)
    return _time("image", size, variants, device, args, "Hiera-S + UperNet(256), random weights")


def _video_model(device: torch.device) -> SSPVideoModel:
    torch.manual_seed(0)
    config = VideoModelConfig(k_registrator_model=None)
    return SSPVideoModel(config, with_flow_model=False).to(device).eval()


def bench_video_step(size, device, args, accuracy) -> list[BenchRow]:
    model = _video_model(device)
    last, frame = _frames(size, device)
    homography = torch.tensor([[[1.0, 0.0, -3.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]]], device=device)
    with torch.inference_mode():
        _, state = model.propagate(last, None, None)
    variants = _variants(model, lambda m: m.propagate(frame, state, homography)[0], args, accuracy)
    return _time("video_step", size, variants, device, args, "homography given; state of the previous frame kept")


def bench_video_step_registration(size, device, args) -> list[BenchRow]:
    if not kornia_available():
        print("video_step_reg: skipped (kornia, the ssp[learned] extra, is not installed)", file=sys.stderr)
        return []
    model = _video_model(device)
    torch.manual_seed(1)
    registrator = LearnedRegistrator().to(device).eval()
    last, frame = _frames(size, device)
    with torch.inference_mode():
        _, state = model.propagate(last, None, None)
        last_described = registrator.describe(last)[0]

    def reference() -> torch.Tensor:
        homography = registrator(last, frame)
        return model.propagate(frame, state, homography)[0]

    def fast() -> torch.Tensor:
        current = registrator.describe(frame)[0]
        homography = registrator.match(last_described, current, size)[None]
        return model.propagate(frame, state, homography)[0]

    both = torch.nn.ModuleList([model, registrator])  # the impl switch reaches LightGlue's cross-attention too
    variants = [Variant("reference", _with_impl(both, "reference", reference)),
                Variant("fast", _with_impl(both, "fast", fast))]  # fmt: skip
    note = "DISK 2048 kp + LightGlue + RANSAC (random weights: all 9 layers, no early stop)"
    return _time("video_step_reg", size, variants, device, args, note)


def bench_raft(size, device, args, accuracy) -> list[BenchRow]:
    torch.manual_seed(0)
    model = RAFT().to(device).eval()
    image1, image2 = _frames(size, device)
    variants = _variants(model, lambda m: m(image1, image2, iters=20, test_mode=True), args, {})
    note = f"all-pairs volume {RAFT.corr_volume_mib((1, 3, *size)):.0f} MiB"
    return _time("raft20", size, variants, device, args, note)


def bench_large(device, args) -> list[BenchRow]:
    """4K rows, fast path only (the reference RAFT's all-pairs volume at 4K would need ~86 GB): peak memory."""
    return _large_image(device, args) + _large_raft(device, args)


def _large_image(device, args) -> list[BenchRow]:
    torch.manual_seed(0)
    model = build_image_model("small").to(device).eval()
    (frame,) = _frames((2176, 3840), device, 1)
    fn = _with_impl(model, "fast", lambda: model(frame))
    return _time("image", (2176, 3840), [Variant("fast", fn)], device, args, "4K (H rounded up to 32)", repeats=1)


def _large_raft(device, args) -> list[BenchRow]:
    torch.manual_seed(0)
    raft = RAFT().to(device).eval()
    image1, image2 = _frames((2160, 3840), device)
    iters = args.large_raft_iters
    fn = _with_impl(raft, "fast", lambda: raft(image1, image2, iters=iters, test_mode=True))
    note = (f"4K, {iters} iterations, windowed lookup (all-pairs volume would be "
            f"{RAFT.corr_volume_mib((1, 3, 2160, 3840)) / 1024:.0f} GiB)")  # fmt: skip
    return _time(f"raft{iters}", (2160, 3840), [Variant("fast", fn)], device, args, note, repeats=1)


def _time(case, size, variants, device, args, note, repeats=None) -> list[BenchRow]:
    for variant in variants:
        variant.atol = ATOL
        variant.note = "; ".join(n for n in (note, variant.note) if n)
    rows = time_variants(
        PACKAGE, f"{case}_{size[0]}x{size[1]}", f"{size[0]}x{size[1]}", size[0] * size[1], variants,
        device=device, warmup=0 if repeats == 1 else args.warmup, repeats=repeats or args.repeats,
    )  # fmt: skip
    for row in rows:
        print(f"  {row.case} {row.impl}: {row.median_ms:.0f} ms, {row.speedup:.2f}x, {row.peak_mib:.0f} MiB, "
              f"diff {row.max_abs_diff:.1e}", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def demo_accuracy(checkpoint: str, device: torch.device, modes: list[str]) -> dict[str, dict[str, float]]:
    """mIoU / TC of the demo's SSP model on the demo's held-out clips: fp32 reference, and each approximate mode's
    change from it (``d_mIoU``, ``d_TC``)."""
    from ssp.checkpoint import load_pretrained
    from ssp.data import SyntheticClips, SyntheticConfig
    from ssp.demo import DemoConfig
    from ssp.evaluate import evaluate_model

    demo = DemoConfig()
    test = SyntheticClips(SyntheticConfig(num_clips=demo.test_clips, frames_per_clip=demo.frames, size=demo.size,
                                          label_every=1, seed=demo.seed + 1000))  # fmt: skip

    def score(impl: str, precision: str = "fp32", compiled: bool = False) -> dict[str, float]:
        model = set_impl(load_pretrained(checkpoint).to(device), impl)
        if compiled:
            compile_networks(model)
        metrics = evaluate_model(model, test, demo.size, "given", "homography", show_progress=False,
                                 precision=precision)["metrics"]  # fmt: skip
        return {"mIoU": metrics["mIoU"], "TC": metrics["TC"]}

    reference = score("reference")
    result = {"reference": reference, "fast": score("fast")}
    for mode in modes:
        measured = score("fast", "bf16") if mode == "bf16" else score("fast", compiled=True)
        result[mode] = {**measured, **{f"d_{k}": measured[k] - reference[k] for k in ("mIoU", "TC")}}
    for name, values in result.items():
        print(f"demo accuracy {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()), file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_bench_arguments(parser)
    cases = ["image", "video_step", "video_step_reg", "raft20"]
    parser.add_argument("--cases", nargs="*", default=cases, choices=cases, help="cases to time (none: only --large)")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the bf16 rows (slow on CPUs without bf16)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to compile on CPU)")
    parser.add_argument("--large", action="store_true", help="add the 4K rows (fast path only; peak memory)")
    parser.add_argument("--large-raft-iters", type=int, default=20, help="RAFT iterations of the 4K row (default 20)")
    parser.add_argument(
        "--accuracy", metavar="CKPT", help="the demo's ssp.pt: score bf16/compile on its held-out clips"
    )
    args = parser.parse_args(argv)
    device = bench_device(args)
    if device.type == "cuda":  # float32 means float32 (TF32 would change every convolution's result)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    modes = ["bf16"] + (["compile"] if args.compile else [])
    accuracy = demo_accuracy(args.accuracy, device, modes) if args.accuracy else {}
    rows: list[BenchRow] = []
    for size in SIZES[args.sizes]:
        if "image" in args.cases:
            rows += bench_image(size, device, args, accuracy)
        if "video_step" in args.cases:
            rows += bench_video_step(size, device, args, accuracy)
        if "video_step_reg" in args.cases:
            rows += bench_video_step_registration(size, device, args)
        if "raft20" in args.cases:
            rows += bench_raft(size, device, args, accuracy)
    if args.large:
        rows += bench_large(device, args)
    run_bench(PACKAGE, rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
