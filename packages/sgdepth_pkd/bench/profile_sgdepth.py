"""torch.profiler tables of the depth+segmentation call (reference and fast), for bench/PROFILE.md.

    .venv/bin/python packages/sgdepth_pkd/bench/profile_sgdepth.py --size 192 640 --threads 1 [--device cuda]

CPU tables are sorted by self CPU time, CUDA tables by self CUDA time; one warm-up call before the profiled one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import image, paper_model, runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(192, 640), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = paper_model(device)
    images = image(tuple(args.size), device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    sort = "self_cpu_time_total"
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort = "self_cuda_time_total"
    for impl in ("reference", "fast"):
        run = runner(model, {"impl": impl})
        with torch.no_grad():
            run(images)
            with torch.profiler.profile(activities=activities) as prof:
                run(images)
                if device.type == "cuda":
                    torch.cuda.synchronize()
        print(f"\n### {impl}, {args.size[0]}x{args.size[1]}, {device}, {args.threads} thread(s)\n")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
