"""Command-line interface: ``semstereo {train,evaluate,predict,demo}``."""

from __future__ import annotations

import argparse

from semcommon.cli import demo_handler, dispatch, package_parser

PROG = "semstereo"


def build_parser() -> argparse.ArgumentParser:
    parser, _ = package_parser(
        PROG,
        "SemStereo (AAAI 2025): semantic-constrained stereo matching for remote-sensing epipolar pairs (US3D, WHU).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, args, {"demo": demo_handler("semstereo")})
