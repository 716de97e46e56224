"""Command-line interface: ``semaglue {train,evaluate,predict,demo,match-pairs}``."""

from __future__ import annotations

import argparse
import sys

from semaglue import match_pairs
from semcommon.checkpoint import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semaglue",
        description="SemaGlue (AAAI 2025): SuperPoint + LightGlue-style matcher with semantic amalgamation; "
        "YFCC pose evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train a model")
    sub.add_parser("evaluate", help="evaluate a model on a dataset split")
    sub.add_parser("predict", help="run a model on your own files")
    demo = sub.add_parser("demo", help="build the paper model and time one forward pass on a generated input")
    demo.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    pairs = sub.add_parser(
        "match-pairs",
        help="match image pairs and evaluate relative pose (the authors' match_pairs.py)",
        description=match_pairs.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    match_pairs.add_arguments(pairs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from semaglue.demo import run_demo

        for key, value in run_demo(device=args.device).items():
            print(f"{key}: {value}")
        return 0
    if args.command == "match-pairs":
        try:
            match_pairs.run(args)
        except (FileNotFoundError, ValueError, CheckpointError) as exc:
            print(f"semaglue match-pairs: {exc}", file=sys.stderr)
            return 1
        return 0
    print(f"semaglue {args.command}: not implemented yet", file=sys.stderr)
    return 2
