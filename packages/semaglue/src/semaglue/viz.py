"""Match and epipolar-error plots (the authors' layout: two images side by side, text overlay top-left and
bottom-left), drawn with :mod:`semcommon.viz` and saved as PNG or PDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from semaglue.outputs import atomic_write
from semcommon.viz import draw_matches, save_png


def error_colormap(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (``N``) -> ``N×3`` uint8 RGB, red (0) through yellow to green (1): the authors'
    ``clip(2 - 2x, 2x, 0)`` map, used for match confidence and epipolar correctness."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    rgb = np.clip(np.stack([2 - x * 2, x * 2, np.zeros_like(x)], -1), 0, 1)
    return (rgb * 255).astype(np.uint8)


def make_matching_plot(
    image0: np.ndarray,
    image1: np.ndarray,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    mkpts0: np.ndarray,
    mkpts1: np.ndarray,
    color: np.ndarray,
    text: Sequence[str] = (),
    small_text: Sequence[str] = (),
    show_keypoints: bool = False,
    margin: int = 10,
) -> np.ndarray:
    """Grey (``H×W``, 0..255) or RGB images side by side with match lines (``color``: ``N×3`` uint8 RGB).

    Any number of matches, zero included. Returns an ``H×W×3`` uint8 RGB canvas for :func:`save_plot`.
    """
    if len(mkpts0) != len(mkpts1) or len(mkpts0) != len(color):
        raise ValueError(
            f"mkpts0 ({len(mkpts0)}), mkpts1 ({len(mkpts1)}) and color ({len(color)}) must have equal length"
        )
    image0 = np.clip(np.asarray(image0, dtype=np.float64), 0, 255).astype(np.uint8)
    image1 = np.clip(np.asarray(image1, dtype=np.float64), 0, 255).astype(np.uint8)
    canvas = np.ascontiguousarray(
        draw_matches(image0, image1, np.reshape(mkpts0, (-1, 2)), np.reshape(mkpts1, (-1, 2)), color, gap=margin)
    )
    if show_keypoints:
        offset = image0.shape[1] + margin
        for pts, dx in ((kpts0, 0), (kpts1, offset)):
            for x, y in np.round(np.reshape(pts, (-1, 2))).astype(int):
                cv2.circle(canvas, (x + dx, y), 2, (0, 0, 0), -1, lineType=cv2.LINE_AA)
                cv2.circle(canvas, (x + dx, y), 1, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    height = canvas.shape[0]
    scale = min(height / 640.0, 2.0)
    _put_lines(canvas, text, top=int(30 * scale), step=int(30 * scale), font_scale=1.0 * scale, thickness=2)
    _put_lines(
        canvas,
        small_text,
        top=height - int(15 * scale) * len(small_text),
        step=int(15 * scale),
        font_scale=0.5 * scale,
        thickness=1,
    )
    return canvas


def _put_lines(
    canvas: np.ndarray, lines: Sequence[str], top: int, step: int, font_scale: float, thickness: int
) -> None:
    for i, line in enumerate(lines):
        origin = (8, top + i * step)
        cv2.putText(canvas, line, origin, cv2.FONT_HERSHEY_DUPLEX, font_scale, (0, 0, 0), thickness + 1, cv2.LINE_AA)
        cv2.putText(canvas, line, origin, cv2.FONT_HERSHEY_DUPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)


def save_plot(canvas: np.ndarray, path: str | Path) -> Path:
    """Write an RGB canvas as ``.png`` or ``.pdf`` (Pillow), atomically."""
    path = Path(path)
    if path.suffix.lower() == ".pdf":
        from PIL import Image

        return atomic_write(path, lambda tmp: Image.fromarray(canvas).save(tmp, "PDF", resolution=100.0))
    return atomic_write(path, lambda tmp: save_png(tmp, canvas))
