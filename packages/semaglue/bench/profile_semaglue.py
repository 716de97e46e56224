"""torch.profiler tables (self CPU time) of the reference and the fast path, for bench/PROFILE.md.

.venv/bin/python packages/semaglue/bench/profile_semaglue.py --case pipeline --size 640 480 --keypoints 1024
.venv/bin/python packages/semaglue/bench/profile_semaglue.py --case matcher --size 1600 1200 --keypoints 2048
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_speed import matcher_inputs, paper_model, stereo_pair
from torch.profiler import ProfilerActivity, profile

from semaglue.model import set_impl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("pipeline", "matcher", "superpoint", "segnext"), default="pipeline")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--keypoints", type=int, default=1024)
    parser.add_argument("--nms", type=int, default=3)
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    width, height = args.size
    model = paper_model(args.keypoints, args.nms, torch.device("cpu"))
    data = stereo_pair(width, height, torch.device("cpu"))
    images = torch.cat([data["image0"], data["image1"]])
    _, matcher_in = matcher_inputs(model, data)
    fn = {
        "pipeline": lambda: model(data),
        "matcher": lambda: model.matcher(matcher_in),
        "superpoint": lambda: model.superpoint({"image": images}),
        "segnext": lambda: model.segment(images),
    }[args.case]
    for impl in ("reference", "fast"):
        set_impl(model, impl)
        with torch.no_grad():
            fn()
            start = time.process_time()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            seconds = time.process_time() - start
        print(
            f"\n### {args.case} {width}x{height}, {args.keypoints} keypoints, impl={impl} (1 thread, "
            f"{seconds:.2f} s process CPU time under the profiler)\n"
        )
        print("```")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
        print("```")


if __name__ == "__main__":
    main()
