"""Command-line interface: ``ssp {train,evaluate,predict,demo}``."""

from __future__ import annotations

import argparse

from semcommon.checkpoint import CheckpointError
from semcommon.cli import add_device_argument, demo_handler, dispatch, package_parser

PROG = "ssp"


def build_parser() -> argparse.ArgumentParser:
    parser, sub = package_parser(
        PROG,
        "SSP / KD-SSP (CVPR 2025): temporally consistent video semantic segmentation for UAVs (UAVid, RuralScapes).",
        custom=("predict",),
    )
    predict = sub.add_parser("predict", help="segment a frame, propagating from the previous frame (SSP checkpoint)")
    predict.add_argument("checkpoint", help="SSP video checkpoint (.pth.tar, authors' format)")
    predict.add_argument("last_frame", help="previous frame (image file)")
    predict.add_argument("frame", help="current frame (image file)")
    predict.add_argument("--out", required=True, help="output PNG: train ids + 1 (the authors' raw-mask convention)")
    predict.add_argument("--registration", default="sift", choices=["akaze", "sift", "orb", "identity"])
    predict.add_argument("--size", type=int, nargs=2, default=[736, 1280], metavar=("H", "W"))
    add_device_argument(predict)
    uavid = sub.add_parser("prepare-uavid", help="UAVid videos + official/VDD labels -> the prepared clip layout")
    uavid.add_argument("source", help="folder of sequences: <seq>/images.mp4, <seq>/Labels/<NNNNNN>.png")
    uavid.add_argument("out", help="new output folder (the dataset root)")
    uavid.add_argument("--vdd", help="VDD grey labels: <vdd>/<seq>/<NNNNNN>.png (adds water and roof)")
    _add_resize(uavid)
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


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from semcommon.io import write_image
    from semcommon.runtime import resolve_device
    from ssp.checkpoint import load_pretrained
    from ssp.inference import predict_pair
    from ssp.model.registration import IdentityRegistrator, OpenCVRegistrator
    from ssp.model.ssp import SSPVideoModel

    model = load_pretrained(args.checkpoint)
    if not isinstance(model, SSPVideoModel):
        raise CheckpointError(f"{args.checkpoint}: not an SSP video checkpoint")
    model.to(resolve_device(args.device))
    registrator = IdentityRegistrator() if args.registration == "identity" else OpenCVRegistrator(args.registration)
    result = predict_pair(model, args.last_frame, args.frame, registrator, size=tuple(args.size))
    write_image(args.out, (result["pred"].cpu().numpy() + 1).astype(np.uint8))
    print(f"wrote {args.out}; homography {result['homography'].numpy().round(3).tolist()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "demo": demo_handler("ssp"),
        "predict": _predict,
        "prepare-uavid": _prepare_uavid,
        "prepare-ruralscapes": _prepare_ruralscapes,
    }
    return dispatch(PROG, args, handlers, user_errors=(CheckpointError, ValueError, FileNotFoundError))
