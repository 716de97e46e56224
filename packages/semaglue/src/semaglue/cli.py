"""Command-line interface: ``semaglue {train,evaluate,predict,demo,match-pairs}``."""

from __future__ import annotations

import argparse

from semaglue import match_pairs, train
from semcommon.checkpoint import CheckpointError
from semcommon.cli import demo_handler, dispatch, package_parser, train_handler

PROG = "semaglue"


def build_parser() -> argparse.ArgumentParser:
    parser, sub = package_parser(
        PROG,
        "SemaGlue (AAAI 2025): SuperPoint + LightGlue-style matcher with semantic amalgamation; YFCC pose evaluation.",
    )
    pairs = sub.add_parser(
        "match-pairs",
        help="match image pairs and evaluate relative pose (the authors' match_pairs.py)",
        description=match_pairs.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    match_pairs.add_arguments(pairs)
    train.add_arguments(sub.choices["train"])
    return parser


def _match_pairs(args: argparse.Namespace) -> int:
    match_pairs.run(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "demo": demo_handler("semaglue"),
        "match-pairs": _match_pairs,
        "train": train_handler(train.make_task, run_dir="runs/semaglue", save_every=1000, log_every=50),
    }
    return dispatch(PROG, args, handlers, user_errors=(FileNotFoundError, ValueError, CheckpointError))
