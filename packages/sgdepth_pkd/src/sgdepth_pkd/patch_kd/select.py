"""Gradient-density patch selection (spec §c.8 step 1).

Patches are square windows whose mean (sparsified) image-gradient magnitude is at least the image's global mean:
the "hard samples" that the teachers re-estimate. All arrays here are NumPy; the image is the ImageNet-normalised
``color_aug`` tensor of one image (3×H×W), exactly as the authors run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = [
    "PatchSelection",
    "SelectionConfig",
    "box_density",
    "candidate_grid",
    "gradient_density_map",
    "grow_patch",
    "integral_image",
    "select_patches",
]

Rect = tuple[int, int, int, int]
"""A patch window ``(row0, col0, height, width)`` in pixels."""


@dataclass(frozen=True)
class SelectionConfig:
    """Patch-selection settings (paper defaults).

    Attributes:
        patch_size: side of the candidate patches (128); the grid's half-size is ``patch_size // 2``.
        stride_factor: grid stride as a fraction of the half-size (0.75 → 48 px at 128).
        growth: pixels added on each side per growth step (32, i.e. the side grows by 64).
        gray_weights: RGB → gray weights applied to the normalised image (0.2989, 0.5870, 0.1140).
    """

    patch_size: int = 128
    stride_factor: float = 0.75
    growth: int = 32
    gray_weights: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)

    def __post_init__(self) -> None:
        if self.patch_size < 2:
            raise ValueError(f"patch_size must be >= 2, got {self.patch_size}")
        if self.stride_factor <= 0:
            raise ValueError(f"stride_factor must be positive, got {self.stride_factor}")
        if self.growth < 0:
            raise ValueError(f"growth must be >= 0, got {self.growth}")

    @property
    def half_size(self) -> int:
        return self.patch_size // 2

    @property
    def stride(self) -> int:
        return max(1, round(self.stride_factor * self.half_size))


@dataclass(frozen=True)
class PatchSelection:
    """Selected patches of one image.

    Attributes:
        rects: windows ``(row0, col0, height, width)`` stably sorted by size, largest first.
        order: for each entry of ``rects``, its index in the list of kept patches before sorting.
        global_density: the image's mean sparsified gradient ``g`` (the keep threshold).
    """

    rects: list[Rect]
    order: list[int]
    global_density: float


def gradient_density_map(image: np.ndarray, gray_weights: tuple[float, float, float]) -> np.ndarray:
    """Sparsified gradient magnitude (H×W float64) of a 3×H×W normalised image.

    gray = weighted channel sum; G = |Sobel_x| + |Sobel_y| (3×3, reflect-101 border); values below the mean of the
    non-zero gradients are zeroed.
    """
    gray = np.tensordot(np.asarray(gray_weights, dtype=np.float64), image.astype(np.float64), axes=1)
    grad = np.abs(cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3)) + np.abs(cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3))
    nonzero = grad[grad > 0]
    if nonzero.size:
        grad[grad < nonzero.mean()] = 0.0
    return grad


def integral_image(values: np.ndarray) -> np.ndarray:
    """Summed-area table, (H+1)×(W+1) float64 with a zero first row and column."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    return table


def box_density(table: np.ndarray, rect: Rect) -> float:
    """Mean of the underlying map inside ``rect`` from its integral image."""
    row0, col0, height, width = rect
    row1, col1 = row0 + height, col0 + width
    total = table[row1, col1] - table[row0, col1] - table[row1, col0] + table[row0, col0]
    return float(total) / (height * width)


def candidate_grid(height: int, width: int, config: SelectionConfig) -> list[Rect]:
    """Candidate windows, rows outer / columns inner: centres ``b, b+stride, … < size−b`` with ``b = half_size``."""
    half, size = config.half_size, config.patch_size
    rows = range(half, height - half, config.stride)
    cols = range(half, width - half, config.stride)
    return [(y - half, x - half, size, size) for y in rows for x in cols]


def grow_patch(rect: Rect, table: np.ndarray, threshold: float, growth: int) -> Rect:
    """Grow ``rect`` by ``growth`` px per side while it stays inside the image and its density stays ≥ threshold."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    if growth == 0:
        return rect
    while True:
        row0, col0, h, w = rect
        grown = (row0 - growth, col0 - growth, h + 2 * growth, w + 2 * growth)
        inside = grown[0] >= 0 and grown[1] >= 0 and grown[0] + grown[2] <= height and grown[1] + grown[3] <= width
        if not inside or box_density(table, grown) < threshold:
            return rect
        rect = grown


def select_patches(image: torch.Tensor | np.ndarray, config: SelectionConfig | None = None) -> PatchSelection:
    """Select high-gradient-density patches of one 3×H×W normalised image.

    A grid candidate is kept when its mean sparsified gradient is ≥ the global mean ``g``; kept patches are grown
    (see :func:`grow_patch`) and stably sorted by size, largest first. Images smaller than ``patch_size`` yield none.
    """
    config = config or SelectionConfig()
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"image must be 3×H×W, got shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    density = gradient_density_map(array, config.gray_weights)
    threshold = float(density.mean())
    table = integral_image(density)
    kept = [
        grow_patch(rect, table, threshold, config.growth)
        for rect in candidate_grid(*density.shape, config)
        if box_density(table, rect) >= threshold
    ]
    order = sorted(range(len(kept)), key=lambda index: kept[index][2], reverse=True)
    return PatchSelection(rects=[kept[i] for i in order], order=order, global_density=threshold)
