"""SGDepth-PKD inference speed: reference vs exact fast path vs approximate modes, in one process (issue 18).

Case ``depth_seg``: the paper network (ResNet50 depth/segmentation encoder + block self-attention, split 1, 4
disparity scales; the pose net does not run at inference) called as the authors' ``inference.py`` does — one batch
dict with purposes depth and segmentation → 4 disparities, segmentation logits and the binary segmentation mask
(original_speed.md: 192×640 0.76 s, 96×320 0.29 s on 2 cores; H100: authors 18.1 ms). Seeded random weights with
random BatchNorm statistics (so folding is not trivial). Sizes: ``small`` 96×320; ``paper`` 192×640; ``all`` adds
KITTI full resolution 375×1242, run at 384×1248 (the network needs multiples of 32; padding/resizing is the caller's choice).

Rows: ``reference`` (the authors' operations: the segmentation tail twice, BN separate, argmax), ``fast`` (exact: BN
folded, one segmentation tail, plane-wise argmax; on CUDA replayed as a CUDA graph), ``fast-cl`` (fast with a
channels_last input), on CUDA ``fast-eager`` (no CUDA graph); approximate: ``fast-bf16`` (autocast; and
``fast-fp16`` on CUDA), with ``--compile`` ``compile`` (torch.compile of the reference operations). Each exact row's
``atol`` is the fixture tolerance 1e-4 × max(1, max |reference output|); the binary mask is compared too.

``--accuracy CKPT`` scores each variant with that model (``sgdepth-pkd demo`` writes
``runs/demo-sgdepth_pkd/runs/stage2/checkpoints/last.pt``) on the demo's held-out synthetic sequences (3 × 8 frames,
64×192): AbsRel (per-image median scaling, range mask) and mIoU, and their change from the fp32 reference.

    .venv/bin/python packages/sgdepth_pkd/bench/bench_speed.py --sizes small --threads 1 --no-save
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from semcommon.bench import BenchRow, Variant, add_bench_arguments, bench_device, run_bench, time_variants
from semcommon.runtime import autocast
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.data.synthetic import SyntheticConfig
from sgdepth_pkd.evaluate import evaluate_loader, synthetic_eval_dataset
from sgdepth_pkd.model.sgdepth import SGDepth

PACKAGE = "sgdepth_pkd"
SIZES = {"small": [("96x320", (96, 320))], "paper": [("192x640", (192, 640))]}
SIZES["all"] = SIZES["small"] + SIZES["paper"] + [("kitti_375x1242", (384, 1248))]
RTOL = 1e-4  # fixture README: max|a-b| <= 1e-4 * max(1, max|b|)
DEMO_DATA = SyntheticConfig(64, 192, 8, speed=(0.8, 1.4))  # the demo's held-out data (DemoConfig defaults)
DEMO_TEST_SEQUENCES = 3


def paper_model(device: torch.device) -> SGDepth:
    """The paper network with seeded random weights and random BN statistics."""
    torch.manual_seed(0)
    model = SGDepth(SGDepthConfig())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.6 + 0.8 * torch.rand(shape, generator=generator))
                module.weight.copy_(1 + 0.1 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
    return model.eval().to(device)


def image(size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """A smooth random 1×3×H×W image at ImageNet-normalised scale."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(1, 3, size[0] // 8, size[1] // 8, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear").to(device)


def _outputs(result: dict) -> dict[str, torch.Tensor]:
    """The batch-dict outputs as a flat, comparable dict (float32)."""
    out = {f"disp_{r}": result["disp", r].float() for r in range(4)}
    out["segmentation_logits"] = result["segmentation_logits", 0].float()
    out["segmentation_mask"] = result["segmentation_mask", 0]
    return out


def variant_specs(device: torch.device, compile: bool) -> list[tuple[str, dict, bool, str]]:
    """(label, options, exact, note) of every row, reference first."""
    cuda = device.type == "cuda"
    specs = [
        ("reference", {"impl": "reference"}, True, "authors' operations (eager)"),
        ("fast", {"impl": "fast"}, True, "BN folded, 1 seg tail" + (", CUDA graph" if cuda else "")),
        ("fast-cl", {"impl": "fast", "channels_last": True}, True, "channels_last input"),
    ]
    if cuda:
        specs.append(("fast-eager", {"impl": "fast", "eager": True}, True, "no CUDA graph"))
    specs.append(("fast-bf16", {"impl": "fast", "precision": "bf16"}, False, "bf16 autocast"))
    if cuda:
        specs.append(("fast-fp16", {"impl": "fast", "precision": "fp16"}, False, "fp16 autocast"))
    if compile:
        specs.append(("compile", {"compile": True}, False, "torch.compile (inductor) of the reference ops"))
    return specs


def runner(model: SGDepth, options: dict) -> Callable[[torch.Tensor], dict]:
    """images → the batch-dict outputs of one variant."""
    precision = options.get("precision", "fp32")
    if options.get("compile"):
        compiled = torch.compile(lambda batch: model((batch,), impl="reference")[0])
    fast = model.fast_path() if options.get("eager") else None

    def run(images: torch.Tensor) -> dict:
        if options.get("channels_last"):
            images = images.contiguous(memory_format=torch.channels_last)
        batch = {("color_aug", 0, 0): images, "purposes": [["depth"], ["segmentation"]]}
        with torch.no_grad(), autocast(images.device, precision):
            if fast is not None:
                disps, logits, mask = fast.eager(images)
                return {**{("disp", r): d for r, d in enumerate(disps)}, ("segmentation_logits", 0): logits,
                        ("segmentation_mask", 0): mask}  # fmt: skip
            if options.get("compile"):
                return compiled(batch)
            return model((batch,), impl=options.get("impl", "fast"))[0]

    return run


def accuracy(checkpoint: str, options: dict, device: torch.device, reference: dict | None) -> dict[str, float]:
    """AbsRel / mIoU of the demo model through one variant on the demo's held-out data (+ change vs reference)."""
    from sgdepth_pkd.checkpoint import load_model

    model = load_model(checkpoint).to(device)
    loader = DataLoader(synthetic_eval_dataset(DEMO_TEST_SEQUENCES, DEMO_DATA), batch_size=8)
    result = evaluate_loader(
        model, loader, "range", impl=options.get("impl", "reference"), precision=options.get("precision", "fp32"),
        compile=options.get("compile", False),
    ).metrics()  # fmt: skip
    scores = {"AbsRel": result["abs_rel"], "mIoU": result["miou"]}
    if reference is not None:
        scores.update({f"d{k}": scores[k] - reference[k] for k in ("AbsRel", "mIoU")})
    return scores


def depth_seg_rows(
    label: str, size: tuple[int, int], model: SGDepth, device: torch.device, args: Any
) -> list[BenchRow]:
    images = image(size, device)
    specs = variant_specs(device, args.compile)
    with torch.no_grad():
        reference = _outputs(runner(model, specs[0][1])(images))
    scale = max(1.0, max(float(v.abs().max()) for v in reference.values()))
    reference_scores = accuracy(args.accuracy, specs[0][1], device, None) if args.accuracy else None
    variants = []
    for name, options, exact, note in specs:
        run = runner(model, options)
        scores = accuracy(args.accuracy, options, device, reference_scores) if args.accuracy else None
        variants.append(Variant(name, lambda run=run: _outputs(run(images)), exact, RTOL * scale, scores, note))
    return time_variants(
        PACKAGE, "depth_seg", label, size[0] * size[1], variants, device=device, warmup=args.warmup,
        repeats=args.repeats,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row (slow first call)")
    parser.add_argument("--accuracy", metavar="CKPT", help="demo checkpoint: AbsRel / mIoU of every variant")
    args = parser.parse_args(argv)
    device = bench_device(args)
    model = paper_model(device)
    rows = []
    for label, size in SIZES[args.sizes]:
        rows += depth_seg_rows(label, size, model, device, args)
    run_bench(PACKAGE, rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
