"""Command-line interface: ``ssp {train,evaluate,predict,demo}``."""

from __future__ import annotations

import argparse
import sys

from semcommon.checkpoint import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssp",
        description="SSP / KD-SSP (CVPR 2025): temporally consistent video semantic segmentation for UAVs "
        "(UAVid, RuralScapes).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train a model (not implemented yet)")
    sub.add_parser("evaluate", help="evaluate a model on a dataset split (not implemented yet)")
    predict = sub.add_parser("predict", help="segment a frame, propagating from the previous frame (SSP checkpoint)")
    predict.add_argument("checkpoint", help="SSP video checkpoint (.pth.tar, authors' format)")
    predict.add_argument("last_frame", help="previous frame (image file)")
    predict.add_argument("frame", help="current frame (image file)")
    predict.add_argument("--out", required=True, help="output PNG: train ids + 1 (the authors' raw-mask convention)")
    predict.add_argument("--registration", default="sift", choices=["akaze", "sift", "orb", "identity"])
    predict.add_argument("--size", type=int, nargs=2, default=[736, 1280], metavar=("H", "W"))
    predict.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    demo = sub.add_parser("demo", help="build the paper model and time one forward pass on a generated input")
    demo.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    return parser


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
    if args.command == "demo":
        from ssp.demo import run_demo

        for key, value in run_demo(device=args.device).items():
            print(f"{key}: {value}")
        return 0
    if args.command == "predict":
        try:
            return _predict(args)
        except (CheckpointError, ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"ssp predict: {exc}", file=sys.stderr)
            return 1
    print(f"ssp {args.command}: not implemented yet", file=sys.stderr)
    return 2
