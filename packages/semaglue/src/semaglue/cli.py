"""Command-line interface: ``semaglue {train,evaluate,predict,demo,match-pairs,export,prepare-megadepth}``."""

from __future__ import annotations

import argparse

from semaglue import demo, evaluate, export, match_pairs, predict, train
from semaglue.data import megadepth
from semcommon.checkpoint import CheckpointError
from semcommon.cli import dispatch, package_parser, train_handler

PROG = "semaglue"


def build_parser() -> argparse.ArgumentParser:
    parser, sub = package_parser(
        PROG,
        "SemaGlue (AAAI 2025): SuperPoint + LightGlue-style matcher with semantic amalgamation; YFCC pose evaluation.",
        custom=("evaluate", "predict", "demo"),
    )
    for name, module, text in (
        ("evaluate", evaluate, "score a matcher: homography protocol (synthetic, HPatches) or YFCC pose"),
        ("predict", predict, "match your own image pairs: *_matches.npz (authors' format) and PNG plots"),
        ("match-pairs", match_pairs, "match image pairs and evaluate relative pose (the authors' match_pairs.py)"),
        (
            "export",
            export,
            "ONNX export of SuperPoint (dense), SegNeXt, or the matcher (fixed keypoint count), checked with onnxruntime",
        ),
    ):
        command = sub.add_parser(
            name, help=text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(command)
    demo_parser = sub.add_parser(
        "demo",
        help="train a reduced SemaGlue on synthetic homographies (~2 min CPU) and compare it with MNN + ratio test",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo_parser.add_argument("--out", default="runs/demo-semaglue", help="output folder (default: runs/demo-semaglue)")
    demo_parser.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    prepare = sub.add_parser(
        "prepare-megadepth",
        help="write MegaDepth scene_info/<scene>.npz files from COLMAP text models (stage-2 training data)",
        description=megadepth.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("--root", required=True, help="MegaDepth root (Undistorted_SfM/, depth_undistorted/)")
    prepare.add_argument("--scene", action="append", required=True, help="scene id, e.g. 0015 (repeatable)")
    prepare.add_argument(
        "--sparse-subdir", default="sparse", help="COLMAP text model folder inside each scene (default: sparse)"
    )
    train.add_arguments(sub.choices["train"])
    return parser


def _match_pairs(args: argparse.Namespace) -> int:
    match_pairs.run(args)
    return 0


def _predict(args: argparse.Namespace) -> int:
    count = predict.run(args)
    print(f"wrote {count} pair(s) to {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    evaluate.run(args)
    print(f"wrote {args.out}/metrics.json and {args.out}/pairs.csv")
    return 0


def _train(args: argparse.Namespace) -> int:
    """``train`` on the frame; an authors' glue-factory YAML also sets the frame's batch size, epochs, seed, logging
    (command-line flags still win)."""
    _, trainer = train.read_config(args)
    defaults = {"run_dir": "runs/semaglue", "save_every": 1000, "log_every": 50, **trainer}
    return train_handler(train.make_task, **defaults)(args)


def _export(args: argparse.Namespace) -> int:
    diff = export.run(args)
    checked = "not checked" if diff is None else f"onnxruntime max abs diff {diff:.2e}"
    print(f"wrote {args.out} ({args.model}; {checked})")
    return 0


def _prepare_megadepth(args: argparse.Namespace) -> int:
    for scene in args.scene:
        path = megadepth.prepare_scene_info(args.root, scene, megadepth.MegaDepthConfig(), args.sparse_subdir)
        print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    payload = demo.run_demo(device=args.device, out=args.out)
    print(demo.format_table(payload))
    print(f"primary metric {demo.PRIMARY}; {payload['seconds']:.0f} s; wrote {args.out}/demo.png and metrics.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "demo": _demo,
        "predict": _predict,
        "evaluate": _evaluate,
        "match-pairs": _match_pairs,
        "prepare-megadepth": _prepare_megadepth,
        "export": _export,
        "train": _train,
    }
    return dispatch(PROG, args, handlers, user_errors=(FileNotFoundError, ValueError, CheckpointError))
