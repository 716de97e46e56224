"""Command-line interface: ``clearscd {train,evaluate,predict,demo}``."""

from __future__ import annotations

import argparse

from semcommon.cli import demo_handler, dispatch, package_parser

PROG = "clearscd"


def build_parser() -> argparse.ArgumentParser:
    parser, _ = package_parser(
        PROG, "ClearSCD (ISPRS JPRS 2024): semantic change detection on bi-temporal imagery (Hi-UCD, LsSCD)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, args, {"demo": demo_handler("clearscd")})
