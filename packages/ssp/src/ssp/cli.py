"""Command-line interface: ``ssp {train,evaluate,predict,demo}``."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssp",
        description="SSP / KD-SSP (CVPR 2025): temporally consistent video semantic segmentation for UAVs (UAVid, RuralScapes).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train a model")
    sub.add_parser("evaluate", help="evaluate a model on a dataset split")
    sub.add_parser("predict", help="run a model on your own files")
    demo = sub.add_parser("demo", help="build the paper model and time one forward pass on a generated input")
    demo.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ssp.demo import run_demo

        for key, value in run_demo(device=args.device).items():
            print(f"{key}: {value}")
        return 0
    print(f"ssp {args.command}: not implemented yet", file=sys.stderr)
    return 2
