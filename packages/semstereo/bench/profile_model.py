"""Profile SemStereo inference (eval, no_grad, random weights) on one thread: the top ops by self CPU time.

python packages/semstereo/bench/profile_model.py --size 512 --impl reference
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import profile

from semstereo.model import SemStereo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--impl", choices=("fast", "reference"), default="reference")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SemStereo().eval()
    left, right = torch.randn(2, 1, 3, args.size, args.size).unbind(0)
    with torch.inference_mode():
        model(left, right, impl=args.impl)
        with profile() as prof:
            model(left, right, impl=args.impl)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
