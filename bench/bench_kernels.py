"""Cost-volume kernels: vectorised reference vs a per-disparity loop, same process, same inputs.

Reports the median latency of each and the speed-up ratio (loop / vectorised); CPU unless CUDA is present.
"""

from __future__ import annotations

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


def main() -> None:
    device = resolve_device("auto")
    torch.manual_seed(0)
    left = torch.randn(1, 256, 32, 64, device=device)
    right = torch.randn(1, 256, 32, 64, device=device)
    fast = measure_latency(lambda: gwc_volume_norm(left, right, -8, 8, 32), repeats=5)
    loop = measure_latency(lambda: gwc_loop(left, right, -8, 8, 32), repeats=5)
    f1, f2 = torch.randn(1, 256, 32, 48, device=device), torch.randn(1, 256, 32, 48, device=device)
    ys, xs = torch.meshgrid(torch.arange(32.0, device=device), torch.arange(48.0, device=device), indexing="ij")
    coords = torch.stack((xs, ys))[None]
    pyramid = corr_pyramid(f1, f2)
    build = measure_latency(lambda: corr_pyramid(f1, f2), repeats=5)
    lookup = measure_latency(lambda: corr_lookup(pyramid, coords), repeats=5)
    print(f"device: {device}")
    print("kernel                          | ms      | ratio")
    print(f"gwc_volume_norm 256ch 32x64 D16 | {fast:7.2f} | 1.00")
    print(f"  per-disparity loop reference  | {loop:7.2f} | {loop / fast:.2f}x slower")
    print(f"corr_pyramid 256ch 32x48 L4     | {build:7.2f} |")
    print(f"corr_lookup r4                  | {lookup:7.2f} |")


if __name__ == "__main__":
    main()
