"""Match and epipolar-error plots drawn with OpenCV (no matplotlib), saved as PNG or PDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def error_colormap(x: np.ndarray) -> np.ndarray:
    """Confidence/correctness in [0, 1] -> RGBA in [0, 1] from red (0) through yellow to green (1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.stack([2 - x * 2, x * 2, np.zeros_like(x), np.ones_like(x)], -1), 0, 1)


def jet_colormap(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGBA in [0, 1] with OpenCV's jet map (the authors colour matches by confidence)."""
    values = (np.clip(np.asarray(x, dtype=np.float64), 0, 1) * 255).astype(np.uint8).reshape(-1, 1)
    bgr = cv2.applyColorMap(values, cv2.COLORMAP_JET).reshape(-1, 3)
    rgb = bgr[:, ::-1].astype(np.float64) / 255
    return np.concatenate([rgb, np.ones((len(rgb), 1))], -1)


def _to_gray_u8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return np.clip(image, 0, 255).astype(np.uint8)


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
    """Side-by-side grey images (``H×W``, 0..255) with match lines; ``color`` is ``N×3/4`` RGB(A) in [0, 1].

    Returns a ``H×W×3`` uint8 BGR canvas (OpenCV order) ready for :func:`save_plot`.
    """
    if len(mkpts0) != len(mkpts1) or len(mkpts0) != len(color):
        raise ValueError(
            f"mkpts0 ({len(mkpts0)}), mkpts1 ({len(mkpts1)}) and color ({len(color)}) must have equal length"
        )
    g0, g1 = _to_gray_u8(image0), _to_gray_u8(image1)
    (h0, w0), (h1, w1) = g0.shape, g1.shape
    height, width = max(h0, h1), w0 + margin + w1
    canvas = np.full((height, width), 255, np.uint8)
    canvas[:h0, :w0] = g0
    canvas[:h1, w0 + margin :] = g1
    out = np.stack([canvas] * 3, -1)
    if show_keypoints:
        for pts, offset in ((kpts0, 0), (kpts1, w0 + margin)):
            for x, y in np.round(np.asarray(pts)).astype(int):
                cv2.circle(out, (x + offset, y), 2, (0, 0, 0), -1, lineType=cv2.LINE_AA)
                cv2.circle(out, (x + offset, y), 1, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    bgr = (np.asarray(color)[:, :3][:, ::-1] * 255).astype(int)
    for (x0, y0), (x1, y1), c in zip(np.round(mkpts0).astype(int), np.round(mkpts1).astype(int), bgr, strict=True):
        c = tuple(int(v) for v in c)
        cv2.line(out, (x0, y0), (x1 + w0 + margin, y1), c, 1, lineType=cv2.LINE_AA)
        cv2.circle(out, (x0, y0), 2, c, -1, lineType=cv2.LINE_AA)
        cv2.circle(out, (x1 + w0 + margin, y1), 2, c, -1, lineType=cv2.LINE_AA)
    scale = min(height / 640.0, 2.0)
    _put_lines(out, text, top=int(30 * scale), step=int(30 * scale), font_scale=1.0 * scale, thickness=2)
    _put_lines(
        out,
        small_text,
        top=height - int(15 * scale) * len(small_text),
        step=int(15 * scale),
        font_scale=0.5 * scale,
        thickness=1,
    )
    return out


def _put_lines(
    canvas: np.ndarray, lines: Sequence[str], top: int, step: int, font_scale: float, thickness: int
) -> None:
    for i, line in enumerate(lines):
        origin = (8, top + i * step)
        cv2.putText(canvas, line, origin, cv2.FONT_HERSHEY_DUPLEX, font_scale, (0, 0, 0), thickness + 1, cv2.LINE_AA)
        cv2.putText(canvas, line, origin, cv2.FONT_HERSHEY_DUPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)


def save_plot(canvas: np.ndarray, path: str | Path) -> Path:
    """Write a BGR canvas as ``.png`` (OpenCV) or ``.pdf`` (Pillow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".pdf":
        from PIL import Image

        Image.fromarray(canvas[..., ::-1]).save(path, "PDF", resolution=100.0)
    elif not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write plot to {path}")
    return path
