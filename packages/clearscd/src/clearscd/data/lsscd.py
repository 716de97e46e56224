"""LsSCD (the authors' Nanjing data set; extended release LsSCD-Ex): large bi-temporal scenes read as tiles.

Line format of a split list: five files — T1 image, T2 image, change label, T1 semantic label, T2 semantic label
(single-band; semantic 0..C−1 with C = ``num_classes`` (7) = unlabelled, change 0/1 with 255 = unlabelled). Each
scene is cut into ``tile``×``tile`` windows (edge-aligned last row/column, as ``clip_image.py``); uncompressed
TIFF scenes are memory-mapped so only the window is read, other formats are decoded whole per window request
(keep one scene at a time: :class:`LsSCDDataset` caches the last decoded scene).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from clearscd.data.common import (
    DataError,
    SplitEntry,
    image_size,
    read_split_list,
    read_window,
    to_tensors,
    validate_sample,
)
from clearscd.data.hiucd import clip_tiles
from clearscd.data.transforms import PairAugment
from semcommon.io import ImageReadError

__all__ = ["LsSCDDataset"]

NUM_CLASSES = 7
_FIELDS = ("image_A", "image_B", "bcd", "sem_A", "sem_B")


class LsSCDDataset(Dataset):
    """Tiles of the scenes of an LsSCD split list (re-rooted on ``root``) → the authors' batch dicts.

    ``tile`` None uses whole scenes. ``augment``: training augmentation with final resize to ``size``.
    """

    def __init__(
        self,
        split_list: str | Path,
        root: str | Path,
        tile: int | None = 512,
        augment: bool = False,
        size: int = 512,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found")
        self.num_classes = num_classes
        self.entries: list[SplitEntry] = read_split_list(split_list, self.root)
        self.windows: list[tuple[int, tuple[int, int, int, int] | None]] = []
        for index, entry in enumerate(self.entries):
            try:
                height, width = image_size(entry.image_A)
            except ImageReadError as exc:
                raise DataError(str(exc)) from exc
            if tile is None:
                self.windows.append((index, None))
                continue
            if height < tile or width < tile:
                raise DataError(f"{entry.image_A}: scene {height}×{width} is smaller than the tile size {tile}")
            self.windows += [(index, (y, y + tile, x, x + tile)) for y, x in clip_tiles(height, width, tile, tile)]
        self.augment = PairAugment(num_classes, size=size) if augment else None
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.windows)

    def _read(self, index: int, window: tuple[int, int, int, int] | None) -> dict[str, np.ndarray]:
        entry = self.entries[index]
        paths = [getattr(entry, f) for f in _FIELDS]
        mappable = all(p.suffix.lower() in (".tif", ".tiff") for p in paths)
        try:
            if mappable or window is None:
                return {f: read_window(p, window) for f, p in zip(_FIELDS, paths, strict=True)}
            if self._cache is None or self._cache[0] != index:
                self._cache = (index, {f: read_window(p) for f, p in zip(_FIELDS, paths, strict=True)})
        except ImageReadError as exc:
            raise DataError(str(exc)) from exc
        y0, y1, x0, x1 = window
        return {f: a[y0:y1, x0:x1] for f, a in self._cache[1].items()}

    def sample(self, item: int) -> dict[str, Any]:
        index, window = self.windows[item]
        entry = self.entries[index]
        arrays = self._read(index, window)
        files = {f: getattr(entry, f) for f in _FIELDS}
        for field in ("bcd", "sem_A", "sem_B"):
            if arrays[field].ndim != 2:
                raise DataError(f"{files[field]}: a label must be single-band, got shape {arrays[field].shape}")
            arrays[field] = arrays[field].astype(np.int64)
        suffix = "" if window is None else f"@{window[0]},{window[2]}"
        sample = {**arrays, "name": f"{entry.image_A}{suffix}"}
        validate_sample(sample, self.num_classes, files)
        return sample

    def __getitem__(self, item: int) -> dict[str, Any]:
        sample = self.sample(item)
        if self.augment is not None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            sample = self.augment(sample, np.random.default_rng(seed))
        return to_tensors(sample)
