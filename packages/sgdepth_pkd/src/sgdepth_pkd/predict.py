"""``sgdepth-pkd predict``: depth, segmentation and relative pose on image files, folders or a video.

Each input image of any size is resized to the network size (as the authors' inference does) and the outputs are
brought back to the image's size. Per image ``<stem>``, written atomically into ``--out``:

* ``<stem>_depth.png``: uint16, value / 256 = depth in the model's units (relative for a monocular model: multiply
  by a median ratio or known scale for metres; 0.1–100 range), ``<stem>_depth.npy``: float32 depth, lossless;
* ``<stem>_disp.npy``: float32 sigmoid disparity (the authors' ``depth_pred.npy``);
* ``<stem>_depth_color.png``: colourised inverse depth; ``<stem>_seg.png``: uint8 trainIds;
  ``<stem>_seg_color.png``: Cityscapes colours blended over the image;
* with ``--poses`` (frames of one sequence: a folder, a video, or several files, in order, all of one size, checked
  before anything is written): ``poses.npy`` (N−1)×4×4 and ``poses.txt`` (one row-major 4×4 per line):
  cam_T_cam(0, 1) between consecutive frames (translation up to the unknown scale).

Existing output files are never overwritten (``--overwrite`` allows it).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from semcommon.io import read_video_frames
from semcommon.runtime import add_inference_arguments, progress, resolve_device
from semcommon.viz import colorize, overlay
from sgdepth_pkd.inference import predict_image, read_rgb, relative_pose
from sgdepth_pkd.model.sgdepth import SGDepth
from sgdepth_pkd.outputs import CITYSCAPES_COLORS, write_depth_png, write_npy, write_png, write_text

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "add_predict_arguments",
    "collect_inputs",
    "predict_frames",
    "run_predict",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
_OUTPUTS = ("_depth.png", "_depth.npy", "_disp.npy", "_depth_color.png", "_seg.png", "_seg_color.png")


def _video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    for index, frame in read_video_frames(path):
        yield f"{path.stem}_{index:06d}", frame


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and videos → ordered list of paths; missing paths raise."""
    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: folder has no image ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"{path}: input not found")
    return paths


def _frames(paths: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        else:
            yield path.stem, read_rgb(path)


def _check_sequence(paths: list[Path]) -> None:
    """Every image file of a pose sequence must have the first one's size (videos are checked while reading)."""
    first: tuple[Path, tuple[int, ...]] | None = None
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            continue
        shape = read_rgb(path).shape
        if first is None:
            first = (path, shape)
        elif shape != first[1]:
            raise ValueError(f"{path}: size {shape[:2]} differs from {first[0].name}'s {first[1][:2]} (--poses)")


def predict_frames(
    model: SGDepth,
    paths: list[Path],
    out: Path,
    overwrite: bool = False,
    poses_between: bool = False,
    show_progress: bool = True,
    impl: str = "fast",
    precision: str = "fp32",
    compile: bool = False,
) -> int:
    """Write the outputs of every frame of ``paths`` into ``out`` (and the consecutive poses with
    ``poses_between``); returns the number of frames. ``impl`` / ``precision`` / ``compile``: see
    :func:`sgdepth_pkd.inference.network_outputs`."""
    if poses_between:
        _check_sequence(paths)
    out.mkdir(parents=True, exist_ok=True)
    poses, previous, count = [], None, 0
    for stem, image in progress(_frames(paths), desc="predict", enabled=show_progress):
        targets = [out / f"{stem}{suffix}" for suffix in _OUTPUTS]
        existing = [str(t) for t in targets if t.exists()]
        if existing and not overwrite:
            raise ValueError(f"{existing[0]}: exists (use --overwrite to replace outputs)")
        pred = predict_image(model, image, impl=impl, precision=precision, compile=compile)
        write_depth_png(targets[0], pred.depth)
        write_npy(targets[1], pred.depth.astype(np.float32))
        write_npy(targets[2], pred.disparity.astype(np.float32))
        write_png(targets[3], colorize(1.0 / pred.depth))
        write_png(targets[4], pred.segmentation.astype(np.uint8))
        write_png(targets[5], overlay(image, CITYSCAPES_COLORS[pred.segmentation], alpha=0.5))
        if poses_between and previous is not None:
            if previous.shape != image.shape:
                raise ValueError(
                    f"{stem}: size {image.shape[:2]} differs from the previous frame's {previous.shape[:2]}"
                )
            poses.append(relative_pose(model, previous, image))
        previous, count = image, count + 1
    if poses:
        stack = np.stack(poses).astype(np.float32)
        write_npy(out / "poses.npy", stack)
        text = "\n".join(" ".join(f"{v:.8g}" for v in pose.reshape(-1)) for pose in stack) + "\n"
        write_text(out / "poses.txt", text)
    return count


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders of images, or videos")
    parser.add_argument("--checkpoint", required=True, help="our RUN_DIR/checkpoints/last.pt or the authors' model.pth")
    parser.add_argument("--out", default="runs/predict-sgdepth_pkd", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--poses", action="store_true", help="relative pose between consecutive frames (a sequence)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    add_inference_arguments(parser)


def run_predict(args: argparse.Namespace) -> int:
    from sgdepth_pkd.checkpoint import load_model

    paths = collect_inputs(args.inputs)
    model = load_model(args.checkpoint).to(resolve_device(args.device))
    count = predict_frames(
        model, paths, Path(args.out), args.overwrite, args.poses, impl=args.impl, precision=args.precision,
        compile=args.compile,
    )  # fmt: skip
    print(f"wrote the outputs of {count} frame(s) to {args.out}")
    return 0
