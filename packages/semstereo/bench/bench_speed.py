"""SemStereo inference speed: reference vs exact fast path vs approximate modes, in one process (issue 18).

Case ``us3d``: the paper's US3D model (``SemStereo(maxdisp=64)``, MobileViTv2-1.0, 38M parameters) in eval mode on
one left/right pair, as the authors' timing (original_speed.md: 1024×1024 32.1 s, 512×512 6.8 s on 2 cores).
Random weights with random BatchNorm statistics (so folding them is not trivial) and a smooth random pair with a
true horizontal shift. Sizes: ``small`` 128², ``paper`` 512² and 1024² (the US3D tile). Rows: ``reference``
(the authors' operations, in order), ``fast`` (exact: one batched encoder call for both views, no unused right
1/2 decoder level, BatchNorm folded into the convolutions), then the approximate ``fast-bf16`` autocast.
Compared outputs: the final cost volume (``cost``, the last continuous tensor before the final top-2 selection) and
the class logits, each within the fixture tolerance 1e-4 × max(1, scale) for exact rows. The final disparity is
not compared element-wise: where two of the 24 ``cost`` planes are near-tied (random weights make many) the top-2
choice may flip, as the fixture README's near-tie rule allows; the row's note gives the share of pixels whose
disparity differs by more than 2e-3 px.

    .venv/bin/python packages/semstereo/bench/bench_speed.py --sizes small --threads 1 --no-save

``--accuracy runs/demo-semstereo/semstereo.pt`` adds each row's EPE / D1 / mIoU on the demo's held-out tiles with the
demo's trained model (and the change from the reference for fast and bf16).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable

import torch

from semcommon.bench import BenchRow, Variant, add_bench_arguments, bench_device, run_bench, time_variants
from semcommon.runtime import autocast
from semstereo.model import SemStereo

PACKAGE = "semstereo"
SIZES = {"small": [128], "paper": [512, 1024], "all": [128, 512, 1024]}
DISP_ATOL = 2e-3  # fixture README: disparities max abs err <= 2e-3 px (outside near-ties)
RTOL = 1e-4  # fixture README: logits and intermediates 1e-4 relative to their scale


def paper_model(device: torch.device) -> SemStereo:
    """The US3D model with seeded random weights and random BN statistics."""
    torch.manual_seed(0)
    model = SemStereo()
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            shape = module.running_mean.shape
            module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            module.running_var.copy_(0.6 + 0.8 * torch.rand(shape, generator=generator))
            if module.weight is not None:
                module.weight.data.copy_(1 + 0.1 * torch.randn(shape, generator=generator))
                module.bias.data.copy_(0.1 * torch.randn(shape, generator=generator))
    return model.eval().to(device)


def pair(size: int, device: torch.device, shift: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random image and the same image shifted by ``shift`` px (1×3×S×S each)."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(1, 3, size // 8, size // 8 + 2, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(size, size + 16), mode="bilinear")
    return image[..., 8 : 8 + size].to(device), image[..., 8 + shift : 8 + shift + size].to(device)


def _call(model: SemStereo, left: torch.Tensor, right: torch.Tensor, impl: str, precision: str) -> Callable:
    def run() -> dict[str, torch.Tensor]:
        with torch.inference_mode(), autocast(left.device, precision):
            out = model(left, right, return_intermediates=True, impl=impl)
        return {
            "cost": out.intermediates["cost"].float(),
            "label": out.label_left.float(),
            "disparity": out.disparity.float(),
        }

    return run


def _compared(run: Callable) -> Callable:
    """The outputs the rows compare: ``cost`` and ``label`` (the disparity's near-tie flips are in the note)."""
    return lambda: {key: value for key, value in run().items() if key != "disparity"}


def demo_accuracy(checkpoint: str, device: torch.device, compiled: bool) -> dict[str, dict[str, float]]:
    """EPE / D1 / mIoU of the demo's model (``semstereo demo`` -> ``semstereo.pt``) on the demo's held-out tiles:
    fp32 reference, fast, fast + bf16 (and with ``compiled`` fast + torch.compile), each with its change from the
    reference (``d_EPE``, ...)."""
    from semstereo import load_pretrained
    from semstereo.demo import DemoRecipe, demo_tiles, score_predictions
    from semstereo.predict import predict_pair

    tiles = demo_tiles(DemoRecipe(), "test")
    model = load_pretrained(checkpoint, map_location=device)

    def score(impl: str, precision: str) -> dict[str, float]:
        model.impl = impl
        predictions = [predict_pair(model, t.left, t.right, device=str(device), precision=precision) for t in tiles]
        return score_predictions(predictions, tiles)

    reference = score("reference", "fp32")
    result = {"reference": reference, "fast": score("fast", "fp32"), "fast-bf16": score("fast", "bf16")}
    if compiled:
        model.forward = torch.compile(model.forward)
        result["fast-compile"] = score("fast", "fp32")
    for name in list(result)[1:]:
        result[name].update({f"d_{k}": result[name][k] - reference[k] for k in reference})
    for name, values in result.items():
        print(f"demo accuracy {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()), file=sys.stderr)
    return result


def us3d_rows(
    size: int, device: torch.device, args: argparse.Namespace, accuracy: dict[str, dict[str, float]]
) -> list[BenchRow]:
    model = paper_model(device)
    left, right = pair(size, device)
    reference = _call(model, left, right, "reference", "fp32")()
    atol = RTOL * max(1.0, float(reference["cost"].abs().max()), float(reference["label"].abs().max()))
    specs = [("reference", "reference", "fp32", True, "authors' operations")]
    specs.append(("fast", "fast", "fp32", True, "batched views, BN folded"))
    if not args.no_bf16:
        specs.append(("fast-bf16", "fast", "bf16", False, "bf16 autocast"))
    if args.compile:
        specs.append(("fast-compile", "fast", "fp32", False, "torch.compile (inductor) of the fast forward"))
    variants = []
    for label, impl, precision, exact, note in specs:
        if label == "fast-compile":
            model = copy.copy(model)  # the compiled forward on a shallow copy; the other rows keep the eager one
            model.forward = torch.compile(model.forward)
        run = _call(model, left, right, impl, precision)
        flips = float(((run()["disparity"] - reference["disparity"]).abs() > DISP_ATOL).float().mean())
        note = f"{note}; disparity >2e-3 px: {flips:.2%}"
        variants.append(Variant(label, _compared(run), exact, atol, accuracy=accuracy.get(label), note=note))
    return time_variants(
        PACKAGE, "us3d", f"{size}x{size}", size * size, variants, device=device, warmup=args.warmup,
        repeats=args.repeats,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    parser.add_argument("--no-bf16", action="store_true", help="skip the approximate bf16 row")
    parser.add_argument(
        "--accuracy", metavar="CKPT", help="the demo's semstereo.pt: score each row on the demo's held-out tiles"
    )
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (minutes to compile on CPU)")
    args = parser.parse_args()
    device = bench_device(args)
    accuracy = demo_accuracy(args.accuracy, device, args.compile) if args.accuracy else {}
    rows: list[BenchRow] = []
    for size in SIZES[args.sizes]:
        rows += us3d_rows(size, device, args, accuracy)
    run_bench(PACKAGE, rows, args)


if __name__ == "__main__":
    main()
