"""Cost-volume kernels: vectorised reference vs a per-disparity loop, same process, same inputs.

Reports the median latency of each and the ratio loop / vectorised (> 1: the vectorised kernel is faster); CPU unless
CUDA is present.
"""

from __future__ import annotations

from functools import partial

import torch

from semcommon.kernels import corr_lookup, corr_pyramid, gwc_volume_norm
from semcommon.runtime import measure_latency, resolve_device


def gwc_loop(left: torch.Tensor, right: torch.Tensor, disp_min: int, disp_max: int, groups: int) -> torch.Tensor:
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


GWC_CASES = (  # (label, channels, height, width, disparity range, groups)
    ("256ch 32x64 D16", 256, 32, 64, (-8, 8), 32),
    ("320ch 64x64 D24 (SemStereo, 512² input)", 320, 64, 64, (-12, 12), 40),
)


def main() -> None:
    device = resolve_device("auto")
    torch.manual_seed(0)
    print(f"device: {device}")
    print(f"{'kernel':<58} | ms       | loop / vectorised")
    for label, channels, height, width, (low, high), groups in GWC_CASES:
        left = torch.randn(1, channels, height, width, device=device)
        right = torch.randn(1, channels, height, width, device=device)
        args = (left, right, low, high, groups)
        fast = measure_latency(partial(gwc_volume_norm, *args), repeats=5)
        loop = measure_latency(partial(gwc_loop, *args), repeats=5)
        print(f"{'gwc_volume_norm ' + label:<58} | {fast:8.2f} | {loop / fast:.2f}")
        print(f"{'  per-disparity loop reference':<58} | {loop:8.2f} |")
    f1, f2 = torch.randn(1, 256, 32, 48, device=device), torch.randn(1, 256, 32, 48, device=device)
    ys, xs = torch.meshgrid(torch.arange(32.0, device=device), torch.arange(48.0, device=device), indexing="ij")
    coords = torch.stack((xs, ys))[None]
    pyramid = corr_pyramid(f1, f2)
    build = measure_latency(lambda: corr_pyramid(f1, f2), repeats=5)
    lookup = measure_latency(lambda: corr_lookup(pyramid, coords), repeats=5)
    print(f"{'corr_pyramid 256ch 32x48 L4':<58} | {build:8.2f} |")
    print(f"{'corr_lookup r4':<58} | {lookup:8.2f} |")


if __name__ == "__main__":
    main()
