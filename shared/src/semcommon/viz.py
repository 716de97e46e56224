"""Visualisation: colour maps, label palettes, overlays, side-by-side panels and match drawings.

Every function returns an ``H×W×3`` uint8 RGB array; :func:`save_png` writes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from semcommon.io import write_image

__all__ = ["colorize", "draw_matches", "label_to_rgb", "overlay", "palette", "save_png", "side_by_side"]

_CMAPS = {
    "turbo": cv2.COLORMAP_TURBO,
    "magma": cv2.COLORMAP_MAGMA,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "jet": cv2.COLORMAP_JET,
}


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def colorize(
    values: Any,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "turbo",
    invalid: Any | None = None,
) -> np.ndarray:
    """Map an ``H×W`` disparity/depth map to RGB with ``cmap``; NaN/inf and ``invalid`` pixels are black.

    ``vmin``/``vmax`` default to the 1st/99th percentiles of the valid values.
    """
    values = _np(values).astype(np.float64)
    if values.ndim != 2:
        raise ValueError(f"colorize: expected an H×W map, got {values.shape}")
    if cmap not in _CMAPS:
        raise ValueError(f"colorize: unknown cmap {cmap!r} (choose from {', '.join(_CMAPS)})")
    valid = np.isfinite(values)
    if invalid is not None:
        valid &= ~_np(invalid).astype(bool)
    finite = values[valid]
    lo = vmin if vmin is not None else (float(np.percentile(finite, 1)) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(np.percentile(finite, 99)) if finite.size else 1.0)
    scaled = np.clip((np.where(valid, values, lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap((scaled * 255).astype(np.uint8), _CMAPS[cmap]), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """A deterministic ``K×3`` uint8 palette of well-separated colours (golden-ratio hues)."""
    hues = (np.arange(num_classes) * 0.618033988749895 + seed * 0.1) % 1.0
    hsv = np.stack([hues * 179, np.full(num_classes, 200), np.full(num_classes, 230)], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def label_to_rgb(labels: Any, colors: Any | None = None, ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Map an ``H×W`` integer label map through a ``K×3`` palette; labels outside ``[0, K)`` get ``ignore_color``."""
    labels = _np(labels).astype(np.int64)
    if labels.ndim != 2:
        raise ValueError(f"label_to_rgb: expected an H×W label map, got {labels.shape}")
    colors = palette(int(labels.max(initial=0)) + 1) if colors is None else _np(colors).astype(np.uint8)
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"label_to_rgb: palette must be K×3, got {colors.shape}")
    inside = (labels >= 0) & (labels < len(colors))
    rgb = np.empty((*labels.shape, 3), dtype=np.uint8)
    rgb[...] = np.asarray(ignore_color, dtype=np.uint8)
    rgb[inside] = colors[labels[inside]]
    return rgb


def _rgb8(image: Any) -> np.ndarray:
    image = _np(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        top = 255.0 if image.max(initial=0) > 1.0 else 1.0
        image = np.clip(image / top * 255, 0, 255).astype(np.uint8)
    return image[..., :3]


def overlay(image: Any, colors: Any, alpha: float = 0.5) -> np.ndarray:
    """Blend an RGB (or grey) image with an equally sized RGB map: ``(1-alpha)·image + alpha·colors``."""
    base, top = _rgb8(image), _rgb8(colors)
    if base.shape != top.shape:
        raise ValueError(f"overlay: image {base.shape} and colours {top.shape} differ in size")
    return np.clip((1 - alpha) * base + alpha * top, 0, 255).astype(np.uint8)


def side_by_side(panels: Sequence[Any], gap: int = 4, background: int = 255) -> np.ndarray:
    """Place images left to right (top-aligned) with ``gap`` pixels between them."""
    if not panels:
        raise ValueError("side_by_side: no panels given")
    images = [_rgb8(p) for p in panels]
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    x = 0
    for image in images:
        canvas[: image.shape[0], x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return canvas


def draw_matches(
    image0: Any,
    image1: Any,
    kpts0: Any,
    kpts1: Any,
    colors: Any | None = None,
    gap: int = 10,
    radius: int = 2,
) -> np.ndarray:
    """Draw matched keypoints (``N×2`` arrays of ``x, y``) between two images placed side by side.

    ``colors`` is ``N×3`` uint8 (RGB) or ``N`` scores in [0, 1] mapped red→green; default green.
    """
    kpts0, kpts1 = _np(kpts0).reshape(-1, 2), _np(kpts1).reshape(-1, 2)
    if len(kpts0) != len(kpts1):
        raise ValueError(f"draw_matches: {len(kpts0)} keypoints in image 0 but {len(kpts1)} in image 1")
    left = _rgb8(image0)
    canvas = np.ascontiguousarray(side_by_side([left, image1], gap=gap))
    if colors is None:
        colors = np.tile(np.array([[0, 255, 0]], dtype=np.uint8), (len(kpts0), 1))
    else:
        colors = _np(colors)
        if colors.ndim == 1:
            score = np.clip(colors.astype(np.float64), 0, 1)
            colors = np.stack([(1 - score) * 255, score * 255, np.zeros_like(score)], axis=-1).astype(np.uint8)
    offset = left.shape[1] + gap
    for (x0, y0), (x1, y1), color in zip(kpts0, kpts1, colors, strict=True):
        c = tuple(int(v) for v in color)
        p0, p1 = (round(x0), round(y0)), (round(x1) + offset, round(y1))
        cv2.line(canvas, p0, p1, c, 1, cv2.LINE_AA)
        cv2.circle(canvas, p0, radius, c, -1, cv2.LINE_AA)
        cv2.circle(canvas, p1, radius, c, -1, cv2.LINE_AA)
    return canvas


def save_png(path: str | Path, image: Any) -> Path:
    """Write an RGB/grey uint8 array as PNG."""
    return write_image(Path(path), _rgb8(image))
