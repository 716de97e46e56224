"""Atomic output files (a temporary name in the target folder, then a rename) and the Cityscapes colours.

Raw depth PNGs follow the KITTI convention: uint16, value / 256 = depth in the model's unit, 0 = invalid.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semcommon.io import write_image

__all__ = [
    "CITYSCAPES_COLORS",
    "DEPTH_PNG_SCALE",
    "atomic_write",
    "write_csv",
    "write_depth_png",
    "write_json",
    "write_npy",
    "write_png",
    "write_text",
]

DEPTH_PNG_SCALE = 256.0
CITYSCAPES_COLORS = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32), (0, 0, 0),
    ],
    dtype=np.uint8,
)  # fmt: skip
"""RGB colour of every trainId 0..19 (19 = the unsupervised class, black)."""


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path`` (same suffix) and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    return atomic_write(path, save)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    return atomic_write(path, lambda tmp: write_image(tmp, image))


def write_depth_png(path: str | Path, depth: np.ndarray) -> Path:
    """H×W depth → uint16 PNG of round(depth·256) (0 = invalid; depths above 255.99 saturate)."""
    values = np.where(np.isfinite(depth) & (depth > 0), depth, 0) * DEPTH_PNG_SCALE
    return write_png(path, np.clip(np.round(values), 0, 65535).astype(np.uint16))
