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
    handlers = {"demo": demo_handler("ssp"), "predict": _predict}
    return dispatch(PROG, args, handlers, user_errors=(CheckpointError, ValueError, FileNotFoundError))
