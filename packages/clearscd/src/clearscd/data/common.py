"""Shared data plumbing: split lists, path re-rooting, sample validation, windowed reading, tensor conversion.

A *sample* is a dict of NumPy arrays: ``image_A``, ``image_B`` H×W×3 uint8 RGB (T1, T2), ``sem_A``, ``sem_B`` H×W
int64 semantic labels (0..C−1 classes, C = unlabelled), ``bcd`` H×W int64 change label (0 unchanged, 1 changed,
255 unlabelled) and ``name`` (str). :func:`to_tensors` turns it into the authors' batch keys ``img_A``, ``img_B``
(3×H×W float, ImageNet-normalised), ``label_SGA``, ``label_SGB``, ``label_BCD`` (H×W int64) and ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from semcommon.io import read_image

__all__ = [
    "BCD_IGNORE",
    "DATASET_MARKERS",
    "HIUCD_CLASSES",
    "DataError",
    "SplitEntry",
    "class_colours",
    "image_size",
    "read_split_list",
    "read_window",
    "reroot",
    "to_tensors",
    "validate_sample",
]

BCD_IGNORE = 255
IMAGENET_MEAN = np.asarray((0.485, 0.456, 0.406), dtype=np.float32)
IMAGENET_STD = np.asarray((0.229, 0.224, 0.225), dtype=np.float32)
# Folder names after which the authors' absolute (Windows) paths are kept, e.g. D:/CDDataset/hiucd_mini/train/...
DATASET_MARKERS = ("hiucd_mini", "hiucd", "lsscd", "lsscd-ex", "nanjing")


HIUCD_CLASSES = ("water", "grass", "building", "greenhouse", "road", "bridge", "others", "bare land", "woodland")
HIUCD_COLOURS = (
    (0, 153, 255), (202, 255, 122), (255, 0, 0), (230, 0, 255), (255, 230, 0),
    (255, 181, 197), (0, 255, 230), (175, 122, 255), (0, 255, 0),
)  # fmt: skip
LSSCD_COLOURS = (
    (255, 181, 197),
    (235, 0, 0),
    (255, 255, 0),
    (0, 100, 200),
    (250, 230, 160),
    (0, 100, 0),
    (255, 170, 0),
)


def class_colours(num_classes: int) -> np.ndarray:
    """The authors' visualisation colours (test.py): Hi-UCD for 9 classes, LsSCD for 7; num_classes×3 uint8."""
    table = {9: HIUCD_COLOURS, 7: LSSCD_COLOURS}.get(num_classes)
    if table is None:
        from semcommon.viz import palette

        return palette(num_classes)
    return np.asarray(table, dtype=np.uint8)


class DataError(ValueError):
    """A dataset file or split list is missing or invalid (the message names it)."""


@dataclass(frozen=True)
class SplitEntry:
    """One line of a split list: T1 image, T2 image, BCD label, T1 label, T2 label (Hi-UCD: the last three are the
    same 3-channel mask)."""

    image_A: Path
    image_B: Path
    bcd: Path
    sem_A: Path
    sem_B: Path


def reroot(entry: str, root: Path) -> Path:
    """Map a path of a split list onto ``root``.

    Relative paths are joined to ``root``. Absolute paths that exist are kept. Otherwise (the authors' lists hold
    ``D:/CDDataset/hiucd_mini/train/...``) everything after the last dataset folder name (``hiucd_mini``, ``hiucd``,
    ``lsscd``, ``nanjing``; case-insensitive) is joined to ``root``; without such a name, the last three components.
    """
    text = entry.strip().replace("\\", "/")
    windows_drive = len(text) > 1 and text[1] == ":"
    path = PurePosixPath(text[2:] if windows_drive else text)
    if not path.is_absolute() and not windows_drive:
        return root / Path(*path.parts)
    if not windows_drive and Path(text).exists():
        return Path(text)
    parts = [p for p in path.parts if p != "/"]
    lowered = [p.lower() for p in parts]
    cut = max((i for i, p in enumerate(lowered) if p in DATASET_MARKERS), default=None)
    tail = parts[cut + 1 :] if cut is not None else parts[-3:]
    return root / Path(*tail)


def read_split_list(path: str | Path, root: str | Path) -> list[SplitEntry]:
    """Read a split list (five space-separated paths per line; blank lines skipped), re-rooted on ``root``."""
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise DataError(f"{path}: split list not found")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DataError(
                f"{path}:{number}: expected 5 space-separated paths (T1 image, T2 image, BCD label, T1 label, "
                f"T2 label), got {len(fields)}"
            )
        entries.append(SplitEntry(*(reroot(f, root) for f in fields)))
    if not entries:
        raise DataError(f"{path}: split list is empty")
    return entries


def read_window(path: Path, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Read ``image[y0:y1, x0:x1]`` (window = (y0, y1, x0, x1)) or the whole image.

    Uncompressed TIFFs are memory-mapped, so a window of a huge scene is read without loading the scene; other
    formats are decoded whole (PNG cannot be read partially).
    """
    if window is not None and path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            mapped = tifffile.memmap(str(path), mode="r")
        except (ValueError, OSError):
            mapped = None
        if mapped is not None:
            if mapped.ndim == 3 and mapped.shape[0] <= 4 and mapped.shape[0] < mapped.shape[-1]:
                mapped = np.moveaxis(mapped, 0, -1)
            y0, y1, x0, x1 = window
            return np.array(mapped[y0:y1, x0:x1])
    array = read_image(path)
    if window is None:
        return array
    y0, y1, x0, x1 = window
    return array[y0:y1, x0:x1]


def image_size(path: Path) -> tuple[int, int]:
    """H, W of an image file (TIFF: from the header only)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            with tifffile.TiffFile(str(path)) as tif:
                shape = tif.series[0].shape
        except Exception as exc:  # tifffile raises several types for corrupt files
            raise DataError(f"{path}: unreadable TIFF ({exc})") from exc
        if len(shape) == 3 and shape[0] <= 4 and shape[0] < shape[-1]:
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])
    return tuple(read_image(path).shape[:2])  # type: ignore[return-value]


def validate_sample(sample: dict[str, Any], num_classes: int, files: dict[str, Path] | None = None) -> None:
    """Check sizes, dtypes and label ranges; the error names the offending file (or array key)."""
    files = files or {}

    def where(key: str) -> str:
        return str(files.get(key, key))

    shape = sample["image_A"].shape[:2]
    for key in ("image_A", "image_B"):
        image = sample[key]
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"{where(key)}: expected an RGB image (H×W×3), got shape {image.shape}")
        if image.dtype != np.uint8:
            raise DataError(f"{where(key)}: expected 8-bit RGB, got dtype {image.dtype}")
        if image.shape[:2] != shape:
            raise DataError(f"{where(key)}: size {image.shape[:2]} differs from the T1 image {shape}")
    for key in ("sem_A", "sem_B", "bcd"):
        label = sample[key]
        if label.shape != shape:
            raise DataError(f"{where(key)}: label size {label.shape} differs from the image size {shape}")
    for key in ("sem_A", "sem_B"):
        bad = (sample[key] < 0) | (sample[key] > num_classes)
        if bad.any():
            raise DataError(
                f"{where(key)}: semantic label values must be 0..{num_classes} ({num_classes} = unlabelled), "
                f"found {int(sample[key][bad][0])}"
            )
    bad = ~np.isin(sample["bcd"], (0, 1, BCD_IGNORE))
    if bad.any():
        raise DataError(f"{where('bcd')}: change label values must be 0, 1 or 255, found {int(sample['bcd'][bad][0])}")


def normalise_image(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float, (x/255 − ImageNet mean) / std."""
    return torch.from_numpy(((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


def to_tensors(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample (module docstring) → the authors' batch keys: img_A, img_B, label_SGA, label_SGB, label_BCD, name."""
    return {
        "img_A": normalise_image(sample["image_A"]).contiguous(),
        "img_B": normalise_image(sample["image_B"]).contiguous(),
        "label_SGA": torch.from_numpy(np.ascontiguousarray(sample["sem_A"], dtype=np.int64)),
        "label_SGB": torch.from_numpy(np.ascontiguousarray(sample["sem_B"], dtype=np.int64)),
        "label_BCD": torch.from_numpy(np.ascontiguousarray(sample["bcd"], dtype=np.int64)),
        "name": sample["name"],
    }
