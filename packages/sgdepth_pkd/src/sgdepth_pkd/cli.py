"""Command-line interface: ``sgdepth-pkd {train,evaluate,predict,demo}``."""

from __future__ import annotations

import argparse

from semcommon.cli import demo_handler, dispatch, package_parser

PROG = "sgdepth-pkd"


def build_parser() -> argparse.ArgumentParser:
    parser, _ = package_parser(
        PROG, "Semantic-guided monocular depth with patch knowledge distillation (SGDepth-based, KITTI)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, args, {"demo": demo_handler("sgdepth_pkd")})
