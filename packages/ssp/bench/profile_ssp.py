"""torch.profiler tables of one SSP forward (image model or RAFT) for an implementation (bench/PROFILE.md).

.venv/bin/python packages/ssp/bench/profile_ssp.py --case image --size 736 1280 --impl reference --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from semcommon.runtime import resolve_device
from ssp.model import RAFT, build_image_model, set_impl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["image", "raft"], default="image")
    parser.add_argument("--size", type=int, nargs=2, default=[736, 1280], metavar=("H", "W"))
    parser.add_argument("--impl", nargs="+", choices=["reference", "fast"], default=["reference", "fast"])
    parser.add_argument("--iters", type=int, default=20, help="RAFT iterations (default 20)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    inputs = [torch.randn(1, 3, *args.size, device=device) for _ in range(2)]
    if args.case == "image":
        model = build_image_model("small").to(device).eval()

        def run() -> object:
            return model(inputs[0])
    else:
        model = RAFT().to(device).eval()

        def run() -> object:
            return model(*inputs, iters=args.iters, test_mode=True)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for impl in args.impl:
        set_impl(model, impl)
        with torch.inference_mode():
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with profile(activities=activities) as prof:
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
        print(f"\n### {args.case} {args.size[0]}x{args.size[1]} impl={impl} on {device} ({args.threads} thread(s)): "
              f"{(time.perf_counter() - start) * 1e3:.0f} ms under the profiler\n")  # fmt: skip
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=50))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
