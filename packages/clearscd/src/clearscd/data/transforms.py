"""Paired training augmentation of the authors' recipe (spec d), applied identically to both images and all labels.

Horizontal flip p 0.5; vertical flip p 0.5; with p 0.5 a rotation by 90/180/270°; with p 0.5 a rotation by a
uniform angle in [−30°, 30°] with canvas expansion (images bilinear, black fill; change label nearest, fill 255;
semantic labels nearest, fill C = unlabelled); then resize to ``size`` (bilinear images, nearest labels).
Randomness comes from a NumPy generator the caller seeds (the datasets seed it from torch's RNG, so the training
frame's saved RNG state makes augmentation resumable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from clearscd.data.common import BCD_IGNORE

__all__ = ["PairAugment"]

_LABELS = ("sem_A", "sem_B", "bcd")


@dataclass
class PairAugment:
    """Callable ``(sample, rng) -> sample``; ``size`` None keeps the input size (no final resize)."""

    num_classes: int = 9
    size: int | None = 512
    max_angle: float = 30.0

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        out = dict(sample)
        keys = ("image_A", "image_B", *_LABELS)
        if rng.random() < 0.5:
            out.update({k: out[k][:, ::-1] for k in keys})
        if rng.random() < 0.5:
            out.update({k: out[k][::-1] for k in keys})
        if rng.random() < 0.5:
            turns = int(rng.integers(1, 4))
            out.update({k: np.rot90(out[k], turns) for k in keys})
        if rng.random() < 0.5:
            angle = float(rng.uniform(-self.max_angle, self.max_angle))
            fills = {"image_A": 0, "image_B": 0, "sem_A": self.num_classes, "sem_B": self.num_classes}
            fills["bcd"] = BCD_IGNORE
            out.update({k: _rotate_expand(out[k], angle, fills[k], k in _LABELS) for k in keys})
        if self.size is not None:
            size = (self.size, self.size)
            for key in keys:
                interp = cv2.INTER_NEAREST if key in _LABELS else cv2.INTER_LINEAR
                out[key] = cv2.resize(np.ascontiguousarray(out[key]), size, interpolation=interp)
        out.update({k: np.ascontiguousarray(out[k]) for k in keys})
        return out


def _rotate_expand(array: np.ndarray, angle: float, fill: int, nearest: bool) -> np.ndarray:
    """Rotate by ``angle`` degrees about the centre, enlarging the canvas to hold the whole rotated image."""
    height, width = array.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = round(height * sin + width * cos), round(height * cos + width * sin)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    source = np.ascontiguousarray(array)
    dtype = source.dtype
    if nearest:
        source = source.astype(np.float32)
    rotated = cv2.warpAffine(
        source,
        matrix,
        (new_w, new_h),
        flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill, fill, fill) if array.ndim == 3 else fill,
    )
    return rotated.astype(dtype)
