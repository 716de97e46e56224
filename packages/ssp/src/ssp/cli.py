"""Command-line interface: ``ssp {train,save-logits,evaluate,predict,export,demo,synthetic,prepare-uavid,prepare-ruralscapes}``."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semcommon.checkpoint import CheckpointError
from semcommon.cli import add_device_argument, dispatch, package_parser
from semcommon.runtime import add_inference_arguments
from semcommon.training import add_train_arguments
from ssp.model.ssp import SSPVideoModel
from ssp.predict import REGISTRATIONS

if TYPE_CHECKING:
    import torch

    from ssp.train import SSPTrainTask

PROG = "ssp"


def build_parser() -> argparse.ArgumentParser:
    parser, sub = package_parser(
        PROG,
        "SSP / KD-SSP (CVPR 2025): temporally consistent video semantic segmentation for UAVs (UAVid, RuralScapes).",
        custom=("predict", "evaluate", "train", "demo"),
    )
    demo = sub.add_parser("demo", help="train SSP and the per-frame baseline on synthetic UAV video (CPU, ~2 min)")
    demo.add_argument(
        "--out", default="runs/demo-ssp", help="output folder: metrics.json, demo.png, ssp.pt (the trained SSP model)"
    )
    demo.add_argument("--image-steps", type=int, help="stage-1 steps (default: the demo recipe's)")
    demo.add_argument("--video-steps", type=int, help="stage-2 (SSP) steps (default: the demo recipe's)")
    demo.add_argument("--train-clips", type=int, help="synthetic training clips (default: the demo recipe's)")
    demo.add_argument("--test-clips", type=int, help="held-out synthetic clips (default: the demo recipe's)")
    demo.add_argument("--threads", type=int, default=1,
                      help="torch CPU threads (default 1: the demo's tensors are small, one thread is fastest on a "
                      "shared machine)")  # fmt: skip
    add_device_argument(demo)
    train = sub.add_parser("train", help="train the image model (stage 1) or SSP / KD-SSP (stage 2) on semcommon's fit")
    add_train_arguments(train, run_dir="runs/train-ssp")
    logits = sub.add_parser("save-logits", help="write teacher logits for every frame of a split (KD)")
    logits.add_argument("--checkpoint", required=True, help="the teacher (image model) checkpoint")
    logits.add_argument("--data", required=True, help="synthetic | a prepared dataset root")
    logits.add_argument("--dataset", default="uavid", choices=["uavid", "ruralscapes"])
    logits.add_argument("--split", default="train", choices=["train", "val", "test"])
    logits.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="teacher input size (default: 1440 2560; synthetic: its frame size)")  # fmt: skip
    logits.add_argument("--out", required=True, help="new logits folder: <out>/<clip>/<frame>.npz")
    add_device_argument(logits)
    evaluate = sub.add_parser("evaluate", help="mIoU, per-class IoU and temporal consistency (TC) over whole clips")
    evaluate.add_argument("--checkpoint", required=True, help="SSP video or image checkpoint (authors' or ours)")
    evaluate.add_argument("--data", required=True, help="synthetic | a prepared dataset root")
    evaluate.add_argument("--dataset", default="uavid", choices=["uavid", "ruralscapes"])
    evaluate.add_argument("--split", default="val", choices=["train", "val", "test"])
    evaluate.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                          help="evaluation size (default: 736 1280; synthetic: its frame size)")  # fmt: skip
    evaluate.add_argument("--registration", choices=[*REGISTRATIONS, "given"],
                          help="default: given (known homographies) for synthetic data, else akaze")  # fmt: skip
    evaluate.add_argument("--flow", choices=["raft", "homography", "none"],
                          help="TC flow (default: homography for synthetic data, else raft)")  # fmt: skip
    evaluate.add_argument("--raft-weights", help="RAFT 'things' weights for the TC flow (default: the checkpoint's)")
    evaluate.add_argument("--out", help="output folder (default: <checkpoint folder>/eval_<split>)")
    add_device_argument(evaluate)
    add_inference_arguments(evaluate)
    predict = sub.add_parser(
        "predict",
        help="segment a video, a folder of frames or an image (SSP: fused output carried forward)",
        description="ssp predict INPUT --checkpoint CKPT --out DIR, or the pair form ssp predict CKPT LAST CURRENT "
        "--out PRED.png (one frame segmented from its previous frame).",
    )
    predict.add_argument("inputs", nargs="+", help="VIDEO | FRAME_DIR | IMAGE; pair form: CKPT LAST CURRENT")
    predict.add_argument("--checkpoint", help="SSP video or image checkpoint (authors' .pth.tar or ours)")
    predict.add_argument("--out", required=True, help="new output folder (pair form: the output PNG)")
    predict.add_argument("--registration", default="akaze", choices=list(REGISTRATIONS))
    predict.add_argument("--registration-weights", help="DISK/LightGlue weights for --registration disk")
    predict.add_argument("--size", type=int, nargs=2, default=[736, 1280], metavar=("H", "W"),
                         help="inference size, multiples of 32 (default: the authors' 736 1280)")  # fmt: skip
    predict.add_argument("--preview-fps", type=float, default=10.0, help="frame rate of preview.mp4")
    predict.add_argument("--no-preview", action="store_true", help="skip preview.mp4")
    add_inference_arguments(predict)
    add_device_argument(predict)
    export = sub.add_parser(
        "export", help="write the segmenter (Hiera + UperNet) or RAFT as ONNX (dynamic batch and image size)"
    )
    export.add_argument("--format", required=True, choices=["onnx"], help="graph format (onnx)")
    export.add_argument("--checkpoint", required=True, help="SSP video, image-model or RAFT checkpoint")
    export.add_argument("--out", required=True, help="new .onnx file")
    export.add_argument("--model", default="segmenter", choices=["segmenter", "raft"],
                        help="segmenter (image model; default) or raft (the checkpoint's RAFT)")  # fmt: skip
    export.add_argument("--size", type=int, nargs=2, default=[736, 1280], metavar=("H", "W"),
                        help="trace size (the graph accepts any size; default 736 1280)")  # fmt: skip
    export.add_argument("--iters", type=int, default=20, help="RAFT iterations, fixed in the graph (default 20)")
    export.add_argument("--check", action="store_true", help="compare the graph with PyTorch in onnxruntime")
    add_device_argument(export)
    uavid = sub.add_parser("prepare-uavid", help="UAVid videos + official/VDD labels -> the prepared clip layout")
    uavid.add_argument("source", help="folder of sequences: <seq>/images.mp4, <seq>/Labels/<NNNNNN>.png")
    uavid.add_argument("out", help="new output folder (the dataset root)")
    uavid.add_argument("--vdd", help="VDD grey labels: <vdd>/<seq>/<NNNNNN>.png (adds water and roof)")
    _add_resize(uavid)
    synthetic = sub.add_parser("synthetic", help="write generated UAV clips in the prepared dataset layout")
    synthetic.add_argument("out", help="new dataset root (train.txt, val.txt, data/<clip>/origin|mask)")
    synthetic.add_argument("--clips", type=int, default=4, help="clips per split (default 4)")
    synthetic.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    synthetic.add_argument("--size", type=int, nargs=2, default=[128, 160], metavar=("H", "W"))
    rural = sub.add_parser("prepare-ruralscapes", help="RuralScapes videos + RGB labels -> the prepared clip layout")
    rural.add_argument("source", help="folder with videos/<DJI_xxxx>.MP4 and labels/*_<DJI_xxxx>_<NNNNNN>.png")
    rural.add_argument("out", help="new output folder (the dataset root)")
    _add_resize(rural)
    return parser


def _add_resize(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resize", type=int, nargs=2, default=[2560, 1440], metavar=("W", "H"),
                       help="frame size after extraction, bicubic (default: the authors' 2560 1440)")  # fmt: skip
    group.add_argument("--no-resize", action="store_true", help="keep the videos' native size")


def _resize(args: argparse.Namespace) -> tuple[int, int] | None:
    if args.no_resize:
        return None
    if min(args.resize) < 32:
        raise ValueError(f"--resize: width and height must be >= 32, got {args.resize}")
    return tuple(args.resize)


def _synthetic(args: argparse.Namespace) -> int:
    from ssp.data import SyntheticConfig, write_synthetic_dataset
    from ssp.data.prepare import finish_output, start_output

    config = SyntheticConfig(num_clips=args.clips, frames_per_clip=args.frames, size=tuple(args.size))
    out = Path(args.out)
    partial = start_output(out)
    write_synthetic_dataset(partial, {"train": config, "val": dataclasses.replace(config, seed=1000, label_every=1)})
    splits = {split: (partial / f"{split}.txt").read_text().split() for split in ("train", "val")}
    finish_output(partial, out, splits)
    print(f"wrote {out} ({_summary(out)})")
    return 0


def _prepare_uavid(args: argparse.Namespace) -> int:
    from ssp.data.uavid import prepare_uavid

    out = prepare_uavid(args.source, args.out, vdd=args.vdd, resize=_resize(args))
    print(f"wrote {out} ({_summary(out)})")
    return 0


def _prepare_ruralscapes(args: argparse.Namespace) -> int:
    from ssp.data.ruralscapes import prepare_ruralscapes

    out = prepare_ruralscapes(args.source, args.out, resize=_resize(args))
    print(f"wrote {out} ({_summary(out)})")
    return 0


def _summary(root) -> str:
    counts = {split: len((root / f"{split}.txt").read_text().split()) for split in ("train", "val")}
    return ", ".join(f"{n} {split} clips" for split, n in counts.items())


def _class_colors(n_classes: int) -> np.ndarray:
    from semcommon.viz import palette
    from ssp.data.tables import DATASETS

    for info in DATASETS.values():
        if info.n_classes == n_classes:
            return np.array(info.train_id_colors, np.uint8)
    return palette(n_classes)


def _load_segmenter(path: str, device: str):
    from semcommon.runtime import resolve_device
    from ssp.checkpoint import load_pretrained
    from ssp.model.image_model import HieraUperNet

    model = load_pretrained(path)
    if not isinstance(model, (SSPVideoModel, HieraUperNet)):
        raise CheckpointError(f"{path}: a {type(model).__name__} checkpoint, not an SSP or image segmentation model")
    return model.to(resolve_device(device))


def _write_atomic_png(path: Path, array: np.ndarray) -> None:
    from semcommon.io import write_image

    if path.exists():
        raise ValueError(f"--out {path}: exists (choose a new file)")
    if path.suffix.lower() != ".png":
        raise ValueError(f"--out {path}: the pair form writes a .png file")
    tmp = path.with_name(f".{path.name}.partial.png")
    write_image(tmp, array)
    os.replace(tmp, path)


def _speed_options(model: torch.nn.Module, args: argparse.Namespace) -> None:
    """``--impl`` on every submodule, ``--compile`` on the networks (approximate, opt-in)."""
    from ssp.model import compile_networks, set_impl

    set_impl(model, args.impl)
    if args.compile:
        compile_networks(model)


def _predict(args: argparse.Namespace) -> int:
    from ssp.predict import VideoPredictor, make_registrator, predict_pair, predict_video

    if args.checkpoint is None:
        checkpoint, last_frame, frame = args.inputs
        model = _load_segmenter(checkpoint, args.device)
        if not isinstance(model, SSPVideoModel):
            raise CheckpointError(f"{checkpoint}: the pair form needs an SSP video checkpoint")
        registrator = make_registrator(args.registration, model, args.registration_weights)
        _speed_options(model, args)
        result = predict_pair(model, last_frame, frame, registrator, size=tuple(args.size), precision=args.precision)
        _write_atomic_png(Path(args.out), (result["pred"].cpu().numpy() + 1).astype(np.uint8))
        print(f"wrote {args.out}; homography {result['homography'].numpy().round(3).tolist()}")
        return 0
    model = _load_segmenter(args.checkpoint, args.device)
    registrator = make_registrator(args.registration, model, args.registration_weights)
    _speed_options(model, args)
    predictor = VideoPredictor(model, registrator, size=tuple(args.size), impl=args.impl, precision=args.precision)
    n_classes = model.base_model.config.n_classes if isinstance(model, SSPVideoModel) else model.config.n_classes
    summary = predict_video(predictor, args.inputs[0], args.out, _class_colors(n_classes),
                            preview=not args.no_preview, fps=args.preview_fps)  # fmt: skip
    print(f"wrote {args.out}: {summary['frames']} frames at {summary['fps']} frames/s (inference), "
          f"registration failures (identity used): {summary['registration_failures']}")  # fmt: skip
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ssp.checkpoint import load_pretrained
    from ssp.data import SyntheticConfig, open_source
    from ssp.evaluate import evaluate_model, format_table, write_results

    model = _load_segmenter(args.checkpoint, args.device)
    source = open_source(args.data, args.split, args.dataset)
    synthetic = args.data == "synthetic"
    size = tuple(args.size) if args.size else (SyntheticConfig().size if synthetic else (736, 1280))
    registration = args.registration or ("given" if synthetic else "akaze")
    flow = args.flow or ("homography" if synthetic else "raft")
    raft = None
    if flow == "raft":
        if args.raft_weights:
            raft = load_pretrained(args.raft_weights, kind="raft").to(next(model.parameters()).device)
        elif getattr(model, "flow_model", None) is not None:
            raft = model.flow_model
            print("TC flow: the checkpoint's RAFT weights (flow_model.*)")
    _speed_options(model, args)
    if raft is not None and raft is not getattr(model, "flow_model", None):
        _speed_options(raft, args)
    result = evaluate_model(model, source, size, registration, flow, raft, precision=args.precision)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.split}"
    write_results(result, out, {"checkpoint": str(args.checkpoint), "data": args.data, "split": args.split})
    print(format_table(result["metrics"]))
    print(f"wrote {out / 'metrics.json'}, per_frame.csv, per_clip.csv")
    return 0


def _export(args: argparse.Namespace) -> int:
    import torch

    from ssp.checkpoint import load_pretrained
    from ssp.export import export_raft, export_segmenter

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {out}: exists (choose a new file)")
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out {out}: expected a .onnx file name")
    from semcommon.runtime import resolve_device

    model = load_pretrained(args.checkpoint).to(resolve_device(args.device))
    size = tuple(args.size)
    if args.model == "raft":
        export_raft(model, out, size, iters=args.iters)
    else:
        export_segmenter(model, out, size)
    message = f"wrote {out} ({args.model}, traced at {size[0]}x{size[1]}, dynamic batch/height/width)"
    if args.check:
        from semcommon.export import check_onnx
        from ssp.export import RaftGraph, segmenter_of

        example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
        if args.model == "raft":
            graph = RaftGraph(model.flow_model if isinstance(model, SSPVideoModel) else model, args.iters)
            inputs = (example, example.roll(3, dims=-1))
        else:
            graph, inputs = segmenter_of(model), (example,)
        device = next(graph.parameters()).device
        diff = check_onnx(out, graph, tuple(x.to(device) for x in inputs), atol=1e-4)
        message += f"; onnxruntime vs PyTorch max abs diff {diff:.2e}"
    print(message)
    return 0


def _train(args: argparse.Namespace) -> int:
    from semcommon.cli import train_handler
    from ssp.config import load_train_config
    from ssp.train import SSPTrainTask

    config = load_train_config(args.config, args.set)
    training = config.training_cfg
    task = SSPTrainTask(config, args.data, args.batch_size or training.batch_size)
    if config.no_training:
        return _save_untrained(task, Path(args.run_dir) / "checkpoints" / "last.pt")
    epochs = training.early_stopping or training.num_epochs
    defaults = {"batch_size": training.batch_size, "epochs": epochs, "max_steps": None}
    if config.pretrained_checkpoint and not args.init:
        defaults["init"] = config.pretrained_checkpoint
    return train_handler(lambda _: task, **defaults)(args)


def _save_untrained(task: SSPTrainTask, path: Path) -> int:
    """``no_training: true``: the authors save the untrained (initialised) model as a checkpoint (epoch 0)."""
    from semcommon.checkpoint import save_checkpoint
    from semcommon.training import to_plain

    if path.exists():
        raise ValueError(f"{path}: exists (choose a new --run-dir)")
    save_checkpoint({"model": task.build_model().state_dict(), "config": to_plain(task.config), "step": 0}, path)
    print(f"wrote {path} (untrained, no_training: true)")
    return 0


def _save_logits(args: argparse.Namespace) -> int:
    from ssp.data import SyntheticConfig, open_source
    from ssp.predict import save_teacher_logits

    model = _load_segmenter(args.checkpoint, args.device)
    source = open_source(args.data, args.split, args.dataset)
    size = tuple(args.size) if args.size else (SyntheticConfig().size if args.data == "synthetic" else (1440, 2560))
    count = save_teacher_logits(model, source, args.out, size)
    print(f"wrote {count} logit files under {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import torch

    from ssp.demo import DemoConfig, run_demo

    recipe = ("image_steps", "video_steps", "train_clips", "test_clips")
    for flag in (*recipe, "threads"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag.endswith("steps") else 1):
            raise ValueError(f"--{flag.replace('_', '-')}: expected a positive number, got {value}")
    torch.set_num_threads(args.threads)
    changes = {k: getattr(args, k) for k in recipe if getattr(args, k) is not None}
    run_demo(args.device, args.out, dataclasses.replace(DemoConfig(), **changes))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "predict":
        if args.checkpoint is None and len(args.inputs) != 3:
            parser.error("predict: --checkpoint is required (or the pair form: CKPT LAST CURRENT)")
        if args.checkpoint is not None and len(args.inputs) != 1:
            parser.error("predict: give one input (video, frame folder or image) with --checkpoint")
    handlers = {
        "demo": _demo,
        "predict": _predict,
        "evaluate": _evaluate,
        "train": _train,
        "save-logits": _save_logits,
        "export": _export,
        "prepare-uavid": _prepare_uavid,
        "synthetic": _synthetic,
        "prepare-ruralscapes": _prepare_ruralscapes,
    }
    return dispatch(PROG, args, handlers, user_errors=(CheckpointError, ValueError, FileNotFoundError))
