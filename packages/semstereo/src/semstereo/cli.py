"""Command-line interface: ``semstereo {train,evaluate,predict,demo,prepare-us3d}``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from semcommon.checkpoint import CheckpointError
from semcommon.cli import add_device_argument, dispatch, package_parser, print_row
from semcommon.io import ImageReadError
from semcommon.runtime import add_inference_arguments, resolve_device
from semcommon.training import add_train_arguments

PROG = "semstereo"


def _checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="authors' checkpoint_0000xx.ckpt or RUN_DIR/checkpoints/last.pt"
    )
    parser.add_argument("--variant", choices=("us3d", "whu"), default="us3d", help="model of an authors' checkpoint")
    parser.add_argument(
        "--stage", choices=("attention", "full"), help="stage-1 (attention) or stage-2 (full) model (default: full)"
    )
    add_device_argument(parser)
    add_inference_arguments(parser)


def _inference_model(args: argparse.Namespace, device: object) -> object:
    """The checkpoint's model with ``--impl`` set and, with ``--compile``, a compiled forward (approximate)."""
    import torch

    from semstereo.checkpoint import load_pretrained

    model = load_pretrained(args.checkpoint, variant=args.variant, stage=args.stage, map_location=device)
    model.impl = args.impl
    if args.compile:
        model.forward = torch.compile(model.forward)
    return model


def build_parser() -> argparse.ArgumentParser:
    parser, sub = package_parser(
        PROG,
        "SemStereo (AAAI 2025): semantic-constrained stereo matching for remote-sensing epipolar pairs (US3D, WHU).",
        custom=("train", "evaluate", "predict", "demo"),
    )
    train = sub.add_parser("train", help="train SemStereo (stage 1: --stage attention, stage 2: --stage full)")
    add_train_arguments(train, run_dir="runs/semstereo")
    train.add_argument("--stage", choices=("attention", "full"), help="training stage (default: the config's, 'full')")

    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint on a test split (authors' aggregation)")
    _checkpoint_arguments(evaluate)
    evaluate.add_argument("--data", default="synthetic", help="'synthetic' or a dataset root (US3D or WHU)")
    evaluate.add_argument("--list", help="split list relative to the root (default: test.txt)")
    evaluate.add_argument("--label-codes", choices=("train", "las"), help="US3D CLS values: training ids or LAS codes")
    evaluate.add_argument("--batch-size", type=int, default=1, help="test batch size (default 1, as test_us3d.py)")
    evaluate.add_argument("--out", default="runs/eval-semstereo", help="folder for metrics.json and items.csv")
    evaluate.add_argument("--overwrite", action="store_true", help="replace metrics.json / items.csv in --out")

    predict = sub.add_parser("predict", help="disparity and classes for your own pairs (files or folders)")
    _checkpoint_arguments(predict)
    predict.add_argument("left", help="left image, or a folder of left images")
    predict.add_argument("right", help="right image, or a folder of right images (same or LEFT->RIGHT names)")
    predict.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    predict.add_argument("--tile", type=int, default=0, help="tile size (multiple of 32); 0 = whole image (default)")
    predict.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    demo = sub.add_parser("demo", help="train a reduced SemStereo on synthetic tiles and compare with SGBM")
    demo.add_argument("--out", default="runs/demo-semstereo", help="output folder (default: runs/demo-semstereo)")
    demo.add_argument("--steps", type=int, help="training steps (default: the demo recipe's)")
    add_device_argument(demo)

    export = sub.add_parser("export", help="export the network to ONNX (fixed input size), checked with onnxruntime")
    _checkpoint_arguments(export)
    export.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    export.add_argument("--out", required=True, help="output .onnx file")
    export.add_argument("--height", type=int, default=1024, help="input height, a multiple of 32 (default 1024)")
    export.add_argument("--width", type=int, default=1024, help="input width, a multiple of 32 (default 1024)")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison with PyTorch")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    prepare = sub.add_parser("prepare-us3d", help="map DFC2019 LAS class codes to the training ids 0..5")
    prepare.add_argument("root", help="US3D root holding the split lists (e.g. .../JAX)")
    prepare.add_argument("out", help="new root: copies of the pairs with *_LEFT_CLS.tif remapped, and the lists")
    prepare.add_argument(
        "--lists", nargs="+", default=["train.txt", "val.txt", "test.txt"], help="split lists to convert"
    )
    return parser


def _train(args: argparse.Namespace) -> int:
    from semstereo.train import run_training

    result = run_training(args)
    if int(os.environ.get("RANK", "0")) == 0:
        print_row({"run_dir": result.run_dir, "step": result.step, **result.metrics})
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from semstereo.checkpoint import read_train_config
    from semstereo.config import DataConfig
    from semstereo.data.factory import open_dataset
    from semstereo.evaluate import evaluate_model, write_results

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    model = _inference_model(args, device)
    stored = read_train_config(args.checkpoint)
    data_config = stored.data if stored is not None else DataConfig()
    if args.label_codes:
        data_config.label_codes = args.label_codes
    dataset = open_dataset(args.data, data_config, "test", list_file=args.list)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    start = time.perf_counter()
    result = evaluate_model(
        model,
        loader,
        device,
        signed=model.config.variant == "us3d",
        show_progress=True,
        total=len(loader),
        precision=args.precision,
    )
    extra = {
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
        "seconds": round(time.perf_counter() - start, 2),
        "impl": args.impl,
        "precision": args.precision,
        "compile": args.compile,
    }
    write_results(result, args.out, extra, overwrite=args.overwrite)
    print(result.table())
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'items.csv'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from semstereo.predict import predict_files

    device = resolve_device(args.device)
    if args.tile and (args.tile % 32 or args.tile < 64):
        raise ValueError(f"--tile must be 0 or a multiple of 32 of at least 64, got {args.tile}")
    model = _inference_model(args, device)
    written = predict_files(
        model,
        args.left,
        args.right,
        args.out,
        args.tile,
        args.overlap,
        str(device),
        overwrite=args.overwrite,
        precision=args.precision,
    )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from semstereo.export import export_model

    if args.height <= 0 or args.width <= 0 or args.height % 32 or args.width % 32:
        raise ValueError(f"--height/--width must be positive multiples of 32, got {args.height}x{args.width}")
    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out}: exists (choose another --out or pass --overwrite)")
    model = _inference_model(args, resolve_device(args.device))
    diff = export_model(model, args.out, args.height, args.width, check=not args.no_check)
    checked = "not checked" if diff is None else f"onnxruntime max abs diff {diff:.2e}"
    print(f"wrote {args.out} ({args.height}x{args.width} pair, {checked})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from semstereo.demo import run_demo

    run_demo(out_dir=args.out, device=args.device, steps=args.steps)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from semstereo.data.prepare import prepare_us3d

    count = prepare_us3d(args.root, args.out, args.lists)
    print(f"wrote {count} pairs with training-id class maps to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "train": _train,
        "evaluate": _evaluate,
        "predict": _predict,
        "demo": _demo,
        "export": _export,
        "prepare-us3d": _prepare,
    }
    return dispatch(
        PROG,
        args,
        handlers,
        user_errors=(FileNotFoundError, ValueError, FileExistsError, ImageReadError, CheckpointError),
    )
