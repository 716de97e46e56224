"""Command-line interface: ``sgdepth-pkd {train,evaluate,predict,demo,export,prepare-kitti}``."""

from __future__ import annotations

import argparse

from semcommon.cli import dispatch, package_parser, train_handler
from semcommon.training import add_train_arguments

PROG = "sgdepth-pkd"


def _evaluate(args: argparse.Namespace) -> int:
    from sgdepth_pkd.evaluate import run_evaluate

    return run_evaluate(args)


def _predict(args: argparse.Namespace) -> int:
    from sgdepth_pkd.predict import run_predict

    return run_predict(args)


def _demo(args: argparse.Namespace) -> int:
    from sgdepth_pkd.demo import run_demo_command

    return run_demo_command(args)


def _export(args: argparse.Namespace) -> int:
    from sgdepth_pkd.export import run_export

    return run_export(args)


def _prepare(args: argparse.Namespace) -> int:
    from sgdepth_pkd.data.prepare import run_prepare_kitti

    return run_prepare_kitti(args)


def _task(args: argparse.Namespace):
    from sgdepth_pkd.train import build_task

    return build_task(args)


def build_parser() -> argparse.ArgumentParser:
    from sgdepth_pkd.data.prepare import add_prepare_arguments
    from sgdepth_pkd.demo import add_demo_arguments
    from sgdepth_pkd.evaluate import add_evaluate_arguments
    from sgdepth_pkd.export import add_export_arguments
    from sgdepth_pkd.predict import add_predict_arguments

    parser, sub = package_parser(
        PROG,
        "Semantic-guided monocular depth with patch knowledge distillation (SGDepth-based, KITTI).",
        custom=("demo",),
    )
    add_train_arguments(sub.choices["train"], run_dir="runs/train-sgdepth_pkd")
    add_evaluate_arguments(sub.choices["evaluate"])
    add_predict_arguments(sub.choices["predict"])
    add_demo_arguments(sub.add_parser("demo", help="train on synthetic data and compare with the baseline"))
    add_export_arguments(
        sub.add_parser("export", help="the depth + segmentation network as ONNX (dynamic batch and image size)")
    )
    add_prepare_arguments(
        sub.add_parser("prepare-kitti", help="unzip KITTI raw archives and export gt_depths.npz for a split")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "train": train_handler(_task, run_dir="runs/train-sgdepth_pkd", save_every=1000, log_every=50),
        "evaluate": _evaluate,
        "predict": _predict,
        "demo": _demo,
        "export": _export,
        "prepare-kitti": _prepare,
    }
    return dispatch(PROG, args, handlers)
