"""Command-line interface: ``clearscd {train,evaluate,predict,demo,export,prepare-hiucd}``.

User errors (bad files, values, checkpoints) print one line and exit 1; a bad command line exits 2 (argparse).
"""

from __future__ import annotations

import argparse
import json
import os

from semcommon.checkpoint import CheckpointError
from semcommon.cli import add_device_argument, dispatch, package_parser
from semcommon.runtime import add_inference_arguments

PROG = "clearscd"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _tile(text: str) -> int:
    value = int(text)
    if value < 32:
        raise argparse.ArgumentTypeError(f"must be >= 32, got {value}")
    return value


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="ours (RUN_DIR/checkpoints/last.pt) or the authors' .pth.tar"
    )
    parser.add_argument("--config", help="model config (the authors' ours.json) when the checkpoint holds none")
    add_device_argument(parser)


def build_parser() -> argparse.ArgumentParser:
    from semcommon.training import add_train_arguments

    parser, sub = package_parser(
        PROG,
        "ClearSCD (ISPRS JPRS 2024): semantic change detection on bi-temporal imagery (Hi-UCD, LsSCD).",
        custom=("train", "evaluate", "predict", "demo", "export"),
    )
    train = sub.add_parser("train", help="train ClearSCD with the authors' recipe (semcommon.training.fit)")
    add_train_arguments(train, run_dir="runs/train-clearscd")

    evaluate = sub.add_parser("evaluate", help="the authors' test.py metrics on a dataset split")
    _model_arguments(evaluate)
    evaluate.add_argument("--data", default="synthetic", help="'synthetic' or a dataset folder (default: synthetic)")
    evaluate.add_argument("--list", help="split list (5 paths per line; default DATA/test.txt)")
    evaluate.add_argument("--dataset", choices=("hiucd", "lsscd"), default="hiucd", help="loader (default: hiucd)")
    evaluate.add_argument("--raw-masks", action="store_true", help="Hi-UCD masks not yet converted (deal_hiucd)")
    evaluate.add_argument("--tile", type=_positive, default=512, help="LsSCD tile size (default: 512)")
    evaluate.add_argument("--num-samples", type=_positive, default=16, help="synthetic pairs (default: 16)")
    evaluate.add_argument("--size", type=_positive, default=128, help="synthetic image size (default: 128)")
    evaluate.add_argument("--batch-size", type=_positive, default=4)
    evaluate.add_argument("--out", default="runs/eval-clearscd", help="metrics.json + per_item.csv go here")
    add_inference_arguments(evaluate)

    predict = sub.add_parser("predict", help="class maps and change map for your own image pairs (any size)")
    _model_arguments(predict)
    predict.add_argument("t1", help="T1 image, or a folder of T1 images")
    predict.add_argument("t2", help="T2 image, or a folder of T2 images (matched by file name)")
    predict.add_argument("--out", default="runs/predict-clearscd", help="output folder")
    predict.add_argument("--tile", type=_tile, default=512, help="window size in pixels, >= 32 (default: 512)")
    predict.add_argument("--overlap", type=int, default=128, help="window overlap in pixels (default: 128)")
    predict.add_argument("--batch", type=_positive, default=4, help="windows per forward pass (default: 4)")
    add_inference_arguments(predict)

    demo = sub.add_parser("demo", help="train on synthetic scenes, compare with post-classification comparison")
    demo.add_argument("--out", default="runs/demo-clearscd", help="demo.png + metrics.json (default: %(default)s)")
    demo.add_argument("--steps", type=_positive, help="training steps of each model (default: the demo recipe)")
    add_device_argument(demo)

    export = sub.add_parser("export", help="the fast inference path as ONNX (dynamic batch and image size)")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    _model_arguments(export)
    export.add_argument("--out", required=True, help="output file (e.g. clearscd.onnx); never overwritten")
    export.add_argument("--size", type=_tile, default=512, help="example input size used for tracing (default: 512)")
    export.add_argument(
        "--check", action="store_true", help="run the graph with onnxruntime and compare it with PyTorch (reference)"
    )

    prepare = sub.add_parser("prepare-hiucd", help="clip, relabel and list raw Hi-UCD tiles (the authors' scripts)")
    prepare.add_argument("--image-a", required=True, help="folder of T1 images (e.g. .../train/2017)")
    prepare.add_argument("--image-b", required=True, help="folder of T2 images (same file names)")
    prepare.add_argument("--masks", required=True, help="folder of raw 3-channel masks (same file names)")
    prepare.add_argument("--out", required=True, help="output dataset folder")
    prepare.add_argument("--split", default="train", help="split name: sub-folder and list OUT/<split>.txt")
    prepare.add_argument("--size", type=_positive, default=512, help="tile size and stride (default: 512)")
    prepare.add_argument("--no-relabel", action="store_true", help="keep the raw mask coding (skip deal_hiucd)")
    return parser


def _load_model(args: argparse.Namespace):
    from clearscd.checkpoint import load_pretrained
    from semcommon.runtime import resolve_device

    device = resolve_device(args.device)
    return load_pretrained(args.checkpoint, config=args.config).to(device), device


def _train(args: argparse.Namespace) -> int:
    from clearscd.train import ClearSCDTask, load_train_config, trainer_defaults, without_best_metric
    from semcommon.training import fit, trainer_config_from_args

    config = load_train_config(args.config, args.set, data=args.data)
    trainer = trainer_config_from_args(args, **trainer_defaults(config))
    task = ClearSCDTask(config, batch_per_step=trainer.batch_size * trainer.grad_accum)
    if task.val_dataset() is None:
        trainer = without_best_metric(trainer)
    result = fit(task, trainer)
    if result.metrics and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"step": result.step, **result.metrics}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from clearscd.evaluate import evaluate_model, format_table, load_eval_dataset, write_eval_outputs

    dataset = load_eval_dataset(
        args.data, args.list, args.dataset, args.num_samples, args.size, args.tile, args.raw_masks
    )
    model, device = _load_model(args)
    classes = getattr(dataset, "num_classes", model.config.num_segclass)
    if classes != model.config.num_segclass:
        raise ValueError(
            f"--checkpoint {args.checkpoint} predicts {model.config.num_segclass} classes but --dataset {args.dataset} "
            f"has {classes} (use a model trained for it, e.g. num_segclass {classes})"
        )
    result = evaluate_model(
        model, dataset, device, batch_size=args.batch_size, impl=args.impl, precision=args.precision,
        compile=args.compile,
    )  # fmt: skip
    print(format_table(result))
    info = {"checkpoint": args.checkpoint, "data": args.data, "list": args.list, "num_items": len(dataset)}
    paths = write_eval_outputs(args.out, result, info)
    print(f"wrote {paths['metrics']} and {paths['per_item']}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from clearscd.inference import Inference
    from clearscd.predict import PredictOptions, pair_files, predict_pair
    from semcommon.runtime import progress

    options = PredictOptions(tile=args.tile, overlap=args.overlap, batch=args.batch)
    pairs = pair_files(args.t1, args.t2)
    model, device = _load_model(args)
    runner = Inference(model.eval(), args.impl, args.precision, args.compile)
    for path_A, path_B in progress(pairs, desc="pairs", total=len(pairs), enabled=len(pairs) > 1):
        written = predict_pair(runner, path_A, path_B, args.out, options, device)
        print(f"{path_A.name}: {', '.join(str(p) for p in written.values())}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from clearscd.demo import run_demo

    run_demo(out=args.out, device=args.device, steps=args.steps)
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clearscd.export import check_export, export_model

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {out}: already exists (not overwritten)")
    model, _ = _load_model(args)
    path = export_model(model, out, size=args.size)
    print(f"wrote {path} (inputs imgs B×6×H×W; outputs seg_A, seg_B, BCD; dynamic B, H, W)")
    if args.check:
        diff = check_export(path, model, size=args.size)
        print(f"onnxruntime vs PyTorch reference: max abs diff {diff:.2e} (within the parity tolerance)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from clearscd.data import prepare_hiucd

    list_path = prepare_hiucd(
        args.image_a, args.image_b, args.masks, args.out, args.split, args.size, relabel=not args.no_relabel
    )
    print(f"wrote {sum(1 for _ in list_path.open())} pairs, list {list_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "predict" and not 0 <= args.overlap < args.tile:
        parser.error(f"--overlap must be in [0, --tile), got {args.overlap} for --tile {args.tile}")
    handlers = {
        "train": _train, "evaluate": _evaluate, "predict": _predict, "demo": _demo, "export": _export,
        "prepare-hiucd": _prepare,
    }  # fmt: skip
    return dispatch(PROG, args, handlers, user_errors=(FileNotFoundError, ValueError, CheckpointError))
