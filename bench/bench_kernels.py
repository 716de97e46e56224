"""Cost-volume kernels of semcommon.kernels: PyTorch reference vs Triton (CUDA only) vs a per-disparity loop.

Same process, same inputs; the first row of each case (the vectorised PyTorch reference) is the speed-up baseline.
Cases at SemStereo's sizes for a 1024×1024 input (1/8 group-wise correlation, 1/4 warp and concatenation volume) and
RAFT's at 1/8 of 736×1280 (92×160, C=256, 4 levels, r=4): the all-pairs pyramid + one lookup against the windowed
lookup from pooled features (no all-pairs volume), which is where the peak memory differs.

    python bench/bench_kernels.py [--device cpu|cuda] [--sizes small|paper|all] [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import torch

from semcommon.bench import BenchRow, Variant, add_bench_arguments, bench_device, run_bench, time_variants
from semcommon.kernels import (
    concat_volume,
    corr_lookup,
    corr_lookup_windowed,
    corr_pyramid,
    feature_pyramid,
    gwc_volume_norm,
    warp_by_disparity,
)
from semcommon.kernels.backend import ENV_VAR, triton_available

PACKAGE = "semcommon.kernels"


def gwc_loop(left: torch.Tensor, right: torch.Tensor, disp_min: int, disp_max: int, groups: int) -> torch.Tensor:
    """Per-disparity loop (the authors' style of building the volume), normalised like :func:`gwc_volume_norm`."""
    b, c, h, w = left.shape
    ln = left.view(b, groups, c // groups, h, w)
    rn = right.view(b, groups, c // groups, h, w)
    ln = ln / (ln.norm(dim=2, keepdim=True) + 1e-5)
    rn = rn / (rn.norm(dim=2, keepdim=True) + 1e-5)
    out = left.new_zeros(b, groups, disp_max - disp_min, h, w)
    for j, d in enumerate(range(disp_min, disp_max)):
        if d > 0:
            out[:, :, j, :, d:] = (ln[..., d:] * rn[..., :-d]).mean(2)
        elif d < 0:
            out[:, :, j, :, :d] = (ln[..., :d] * rn[..., -d:]).mean(2)
        else:
            out[:, :, j] = (ln * rn).mean(2)
    return out


def forced(mode: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with ``SEMVISION_KERNELS=mode`` (the previous value restored after each call)."""

    def call() -> Any:
        previous = os.environ.get(ENV_VAR)
        os.environ[ENV_VAR] = mode
        try:
            return fn()
        finally:
            if previous is None:
                del os.environ[ENV_VAR]
            else:
                os.environ[ENV_VAR] = previous

    return call


def kernel_variants(fn: Callable[[], Any], device: torch.device, *extra: Variant) -> list[Variant]:
    """Reference (PyTorch), the ``extra`` variants, and Triton on CUDA."""
    variants = [Variant("torch reference", forced("torch", fn)), *extra]
    if device.type == "cuda" and triton_available():
        variants.append(Variant("triton", forced("triton", fn)))
    return variants


SIZES = {  # name -> (SemStereo feature size at 1/8, RAFT feature size at 1/8)
    "small": ((32, 64), (46, 80)),
    "paper": ((128, 128), (92, 160)),
}


def cases(size: str, device: torch.device, args: argparse.Namespace) -> list[BenchRow]:
    (h8, w8), (hr, wr) = SIZES[size]
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device=device)

    timing = {"device": device, "warmup": args.warmup, "repeats": args.repeats}
    rows: list[BenchRow] = []
    left8, right8 = randn(1, 256, h8, w8), randn(1, 256, h8, w8)
    label = f"{8 * h8}x{8 * w8}"
    rows += time_variants(
        PACKAGE,
        "gwc_volume_norm 256ch/32g 1/8 [-8,8)",
        label,
        64 * h8 * w8,
        kernel_variants(
            lambda: gwc_volume_norm(left8, right8, -8, 8, 32),
            device,
            Variant("per-disparity loop", lambda: gwc_loop(left8, right8, -8, 8, 32)),
        ),
        **timing,
    )
    h4, w4 = 2 * h8, 2 * w8
    right4, disp5 = randn(1, 128, h4, w4), randn(1, 5, h4, w4) * 8
    rows += time_variants(
        PACKAGE,
        "warp_by_disparity 128ch D5 1/4",
        label,
        64 * h8 * w8,
        kernel_variants(lambda: warp_by_disparity(right4, disp5), device),
        **timing,
    )
    left32, right32 = randn(1, 32, h4, w4), randn(1, 32, h4, w4)
    hypotheses = torch.randint(-16, 16, (1, 24, h4, w4), generator=gen, device=device).float()
    rows += time_variants(
        PACKAGE,
        "concat_volume 32ch k24 1/4",
        label,
        64 * h8 * w8,
        kernel_variants(lambda: concat_volume(left32, right32, hypotheses), device),
        **timing,
    )
    f1, f2 = randn(1, 256, hr, wr), randn(1, 256, hr, wr)
    ys, xs = torch.meshgrid(torch.arange(hr * 1.0, device=device), torch.arange(wr * 1.0, device=device), indexing="ij")
    coords = torch.stack((xs, ys))[None] + randn(1, 2, hr, wr) * 4

    def windowed() -> torch.Tensor:
        return corr_lookup_windowed(f1, feature_pyramid(f2, 4), coords, 4)

    variants = [
        Variant("all-pairs pyramid + lookup", lambda: corr_lookup(corr_pyramid(f1, f2, 4), coords, 4)),
        Variant("windowed torch (chunked)", forced("torch", windowed)),
    ]
    if device.type == "cuda" and triton_available():
        variants.append(Variant("windowed triton", forced("triton", windowed)))
    rows += time_variants(
        PACKAGE, "RAFT corr 256ch L4 r4: build + 1 lookup", f"{8 * hr}x{8 * wr}", 64 * hr * wr, variants, **timing
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    args = parser.parse_args()
    device = bench_device(args)
    sizes = ("small", "paper") if args.sizes == "all" else (args.sizes,)
    rows = [row for size in sizes for row in cases(size, device, args)]
    run_bench(PACKAGE, rows, args)


if __name__ == "__main__":
    main()
