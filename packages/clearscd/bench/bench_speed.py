"""ClearSCD inference speed: reference vs exact fast path vs approximate modes, in one process (issue 18).

Case ``full``: the paper model (``configs/hiucd_mini/ours.json``: EfficientNet-b0 + FPN 256/128, 9 classes, deep
CVAPS) in test mode on one bi-temporal pair, as the authors' timing (original_speed.md: 512×512 0.89 s, 256×256
0.27 s on 2 cores). Random weights with random BatchNorm statistics (so folding them is not trivial); sizes
``small`` 256², ``paper`` 512². Rows: ``reference`` (the authors' operations), ``fast`` (exact), on CUDA also the
fast path replayed as CUDA graphs, in channels_last and with the dates one after the other, then the approximate
modes bf16
(and fp16 on CUDA) autocast and, with ``--compile``, torch.compile. The ``atol`` of each exact row is the fixture
tolerance, 1e-4 × max(1, max |reference output|).

``--accuracy CKPT`` scores every variant on the demo's held-out synthetic pairs (24 pairs of 64², seed 1000) with
that model (``clearscd demo`` writes ``OUT/clearscd.pt``): SeK and mIoU (authors' aggregation, %) and their change
from the fp32 reference. ``--large N`` adds the user-scene row: ``predict`` (512 tiles, 128 overlap, batch 4) on a
generated N×N GeoTIFF pair, reference and fast, with the peak memory (CPU: resident set above the level before the
call, which includes the memory-mapped scene pages read; CUDA: allocated device memory).

    .venv/bin/python packages/clearscd/bench/bench_speed.py --sizes small --threads 1 --no-save
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from clearscd.data.synthetic import SyntheticSCD
from clearscd.evaluate import SYNTHETIC_EVAL_SEED, evaluate_model
from clearscd.inference import Inference
from clearscd.model import ClearSCD
from clearscd.predict import PredictOptions, predict_pair
from semcommon.bench import BenchRow, Variant, add_bench_arguments, bench_device, run_bench, time_variants

PACKAGE = "clearscd"
SIZES = {"small": [256], "paper": [512], "all": [256, 512]}
RTOL = 1e-4  # fixture README: max|a-b| <= 1e-4 * max(1, max|b|)


def paper_model(device: torch.device) -> ClearSCD:
    """The paper model with seeded random weights and random BN statistics (as the fixtures make them)."""
    torch.manual_seed(0)
    model = ClearSCD()
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            module.running_var.copy_(0.6 + 0.8 * torch.rand(shape, generator=generator))
            module.weight.data.copy_(1 + 0.1 * torch.randn(shape, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(shape, generator=generator))
    return model.eval().to(device)


def pair(size: int, device: torch.device) -> torch.Tensor:
    """A smooth random bi-temporal pair, 1×6×S×S, ImageNet-normalised scale."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(1, 6, size // 8, size // 8, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").to(device)


def variant_specs(device: torch.device, compile: bool) -> list[tuple[str, dict, bool, str]]:
    """(label, Inference keyword arguments, exact, note) of every row, reference first."""
    specs = [
        ("reference", {"impl": "reference"}, True, "authors' operations (eager)"),
        ("fast", {"impl": "fast"}, True, "dates batched, NCHW" if device.type == "cuda" else "channels_last"),
    ]
    if device.type == "cuda":
        specs += [
            ("fast-graphs", {"impl": "fast", "cuda_graphs": True}, True, "CUDA graphs"),
            ("fast-cl", {"impl": "fast", "channels_last": True}, True, "channels_last"),
            ("fast-per-date", {"impl": "fast", "batch_dates": False}, True, "dates one after the other"),
        ]
    specs.append(("fast-bf16", {"impl": "fast", "precision": "bf16"}, False, "bf16 autocast"))
    if device.type == "cuda":
        specs.append(("fast-fp16", {"impl": "fast", "precision": "fp16"}, False, "fp16 autocast"))
    if compile:
        specs.append(("fast-compile", {"impl": "fast", "compile": True}, False, "torch.compile (inductor)"))
    return specs


def accuracy(checkpoint: str, kwargs: dict, device: torch.device, reference: dict[str, float] | None) -> dict:
    """SeK / mIoU (%) of the demo model through one variant on the demo's held-out pairs (+ change vs reference)."""
    from clearscd.checkpoint import load_pretrained

    model = load_pretrained(checkpoint).to(device)
    dataset = SyntheticSCD(num_samples=24, size=64, seed=SYNTHETIC_EVAL_SEED)
    impl = kwargs.get("impl", "fast")
    precision = kwargs.get("precision", "fp32")
    result = evaluate_model(
        model, dataset, device, batch_size=8, per_item=False, show_progress=False, impl=impl,
        precision=precision, compile=kwargs.get("compile", False),
    )  # fmt: skip
    scores = {"SeK": result.authors["SCD_Sek"], "mIoU": result.authors["SEG_mIoU"]}
    if reference is not None:
        scores.update({f"d{k}": scores[k] - reference[k] for k in ("SeK", "mIoU")})
    return scores


def full_rows(size: int, device: torch.device, args: argparse.Namespace) -> list[BenchRow]:
    model = paper_model(device)
    imgs = pair(size, device)
    specs = variant_specs(device, args.compile)
    reference_scores = accuracy(args.accuracy, specs[0][1], device, None) if args.accuracy else None
    with torch.no_grad():
        scale = max(1.0, max(float(v.abs().max()) for v in Inference(model, "reference")(imgs).values()))
    variants = []
    for label, kwargs, exact, note in specs:
        runner = Inference(model, **kwargs)
        scores = accuracy(args.accuracy, kwargs, device, reference_scores) if args.accuracy else None
        variants.append(Variant(label, _call(runner, imgs), exact, RTOL * scale, scores, note))
    return time_variants(
        PACKAGE, "full", f"{size}x{size}", size * size, variants, device=device, warmup=args.warmup,
        repeats=args.repeats,
    )  # fmt: skip


def _call(runner: Inference, imgs: torch.Tensor) -> Callable[[], dict[str, torch.Tensor]]:
    return lambda: runner(imgs)


def _scene(path: Path, size: int, seed: int) -> None:
    """An uncompressed RGB GeoTIFF-like scene written band by band (never held in memory)."""
    import tifffile

    image = tifffile.memmap(str(path), shape=(size, size, 3), dtype=np.uint8, photometric="rgb")
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (size // 16 + 2, size // 16 + 2, 3)).astype(np.uint8)
    for y in range(0, size, 1024):
        rows = min(1024, size - y)
        image[y : y + rows] = np.repeat(np.repeat(coarse[y // 16 : y // 16 + rows // 16 + 1], 16, 0), 16, 1)[
            :rows, :size
        ]
    image.flush()
    del image


def large_rows(size: int, device: torch.device, args: argparse.Namespace) -> list[BenchRow]:
    """``predict`` on a size×size scene pair, reference and fast; outputs compared on the change probability."""
    model = paper_model(device)
    folder = Path(tempfile.mkdtemp(prefix="clearscd-bench-"))
    try:
        _scene(folder / "t1.tif", size, 0)
        _scene(folder / "t2.tif", size, 1)
        counter = iter(range(10**6))

        def run(impl: str) -> Callable[[], torch.Tensor]:
            runner = Inference(model, impl)

            def call() -> torch.Tensor:
                out = folder / f"out{next(counter)}"
                opts = PredictOptions(progress=False)
                written = predict_pair(runner, folder / "t1.tif", folder / "t2.tif", out, opts, device)
                import tifffile

                prob = torch.from_numpy(tifffile.imread(str(written["change_prob"])).astype(np.float32) / 65535)
                shutil.rmtree(out)
                return prob

            return call

        variants = [
            Variant("reference", run("reference"), note="predict, 512 tiles / 128 overlap"),
            Variant("fast", run("fast"), atol=2.0 / 65535, note="predict, 512 tiles / 128 overlap"),
        ]
        return time_variants(
            PACKAGE, "predict_scene", f"{size}x{size}", size * size, variants, device=device, warmup=0, repeats=1
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(parser)
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row (compiles first; slow)")
    parser.add_argument(
        "--accuracy", metavar="CKPT", help="score the variants with this model (clearscd.pt of the demo)"
    )
    parser.add_argument("--large", type=int, metavar="N", help="add the predict row on an N×N scene pair (e.g. 4096)")
    args = parser.parse_args()
    device = bench_device(args)
    rows: list[BenchRow] = []
    for size in SIZES[args.sizes]:
        rows += full_rows(size, device, args)
    if args.large:
        rows += large_rows(args.large, device, args)
    run_bench(PACKAGE, rows, args)


if __name__ == "__main__":
    main()
