"""torch.profiler tables of ClearSCD inference, reference vs fast (the tables of bench/PROFILE.md).

``python packages/clearscd/bench/profile_clearscd.py --size 512 --threads 1 [--device cuda] [--rows 15]``
(paper model, random weights: timing does not depend on the values).
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from clearscd.model import ClearSCD
from clearscd.model.fast import build_fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--channels-last", action="store_true", help="fast path in channels_last memory format")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ClearSCD().eval().to(args.device)
    fast = build_fast(model)
    imgs = torch.randn(1, 6, args.size, args.size, device=args.device)
    if args.channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        imgs = imgs.contiguous(memory_format=torch.channels_last)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    sort = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    for name, fn in (("reference", lambda: model(imgs, test=True)), ("fast", lambda: fast(imgs))):
        with torch.no_grad():
            fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            with profile(activities=activities) as prof:
                fn()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
        print(f"## {name}: {args.size}x{args.size} pair, {args.device}, {args.threads} thread(s)")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))


if __name__ == "__main__":
    main()
