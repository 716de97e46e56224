"""Hi-UCD and Hi-UCD mini (Tian et al.; Tallinn, 0.1 m): the processed layout the authors train on, their mask
encoding, and the preparation steps of their scripts (``clip_image.py``, ``deal_hiucd.py``, ``write_path.py``).

Processed layout (what the split lists point to): one line per pair with five paths — T1 image, T2 image and the
same 3-channel mask PNG three times. Mask channels (bands 1..3, i.e. R, G, B as written): T1 semantic, T2 semantic,
change. After ``deal_hiucd`` semantic values are 0..8 (classes of ``classes.json``) with 9 = unlabelled, change
values 0 (unchanged), 1 (changed), 255 (unlabelled). Raw Hi-UCD masks use 0 = unlabelled, 1..9 classes and change
1/2 (0 unlabelled); :func:`deal_hiucd` converts, and ``raw_masks=True`` converts on the fly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from clearscd.data.common import BCD_IGNORE, DataError, SplitEntry, read_split_list, to_tensors, validate_sample
from clearscd.data.transforms import PairAugment
from semcommon.io import ImageReadError, read_image, write_image

__all__ = ["HiUCDDataset", "clip_tiles", "deal_hiucd", "prepare_hiucd"]

NUM_CLASSES = 9


def deal_hiucd(mask: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Raw Hi-UCD mask H×W×3 → processed: semantic v − 1 with 0 → ``num_classes``; change v − 1 with 0 → 255."""
    if mask.ndim != 3 or mask.shape[2] != 3:
        raise ValueError(f"a Hi-UCD mask has 3 channels (T1, T2, change), got shape {mask.shape}")
    raw = mask.astype(np.int64)
    out = np.empty_like(raw)
    out[..., :2] = np.where(raw[..., :2] == 0, num_classes, raw[..., :2] - 1)
    out[..., 2] = np.where(raw[..., 2] == 0, BCD_IGNORE, raw[..., 2] - 1)
    return out.astype(np.uint8)


def clip_tiles(height: int, width: int, size: int = 512, stride: int = 512) -> list[tuple[int, int]]:
    """Top-left corners of ``clip_image.py``'s tiles in row-major order: a regular grid, plus a last row/column
    aligned to the bottom/right edge when the image size is not covered (tile k is named ``{k}_{name}``)."""
    if height < size or width < size:
        raise ValueError(f"image {height}×{width} is smaller than the tile size {size}")

    def starts(length: int) -> list[int]:
        values = list(range(0, length - size + 1, stride))
        if values[-1] + size < length:
            values.append(length - size)
        return values

    return [(y, x) for y in starts(height) for x in starts(width)]


class HiUCDDataset(Dataset):
    """Pairs of a Hi-UCD split list (re-rooted on ``root``) → the authors' batch dicts.

    ``augment``: the training augmentation with final resize to ``size`` (spec d); ``raw_masks``: masks are still
    in the raw Hi-UCD coding (converted with :func:`deal_hiucd`). Every sample is validated (image sizes, dtypes,
    label ranges); errors name the offending file.
    """

    num_classes = NUM_CLASSES

    def __init__(
        self,
        split_list: str | Path,
        root: str | Path,
        augment: bool = False,
        size: int = 512,
        raw_masks: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found")
        self.entries: list[SplitEntry] = read_split_list(split_list, self.root)
        self.augment = PairAugment(NUM_CLASSES, size=size) if augment else None
        self.raw_masks = raw_masks

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        try:
            image_A = read_image(entry.image_A)
            image_B = read_image(entry.image_B)
            mask = read_image(entry.bcd)
        except ImageReadError as exc:
            raise DataError(str(exc)) from exc
        if mask.ndim != 3 or mask.shape[2] != 3:
            raise DataError(f"{entry.bcd}: a Hi-UCD mask needs 3 channels (T1, T2, change), got shape {mask.shape}")
        if mask.dtype != np.uint8:
            raise DataError(f"{entry.bcd}: expected an 8-bit mask, got dtype {mask.dtype}")
        if self.raw_masks:
            mask = deal_hiucd(mask)
        sample = {
            "image_A": image_A,
            "image_B": image_B,
            "sem_A": mask[..., 0].astype(np.int64),
            "sem_B": mask[..., 1].astype(np.int64),
            "bcd": mask[..., 2].astype(np.int64),
            "name": str(entry.image_A),
        }
        files = {"image_A": entry.image_A, "image_B": entry.image_B, "sem_A": entry.bcd, "sem_B": entry.bcd}
        validate_sample(sample, NUM_CLASSES, {**files, "bcd": entry.bcd})
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.sample(index)
        if self.augment is not None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            sample = self.augment(sample, np.random.default_rng(seed))
        return to_tensors(sample)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff", ".jpg"))
    if not files:
        raise DataError(f"{folder}: no image files")
    return files


def _atomic_write(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write_image(tmp, array)
    os.replace(tmp, path)


def prepare_hiucd(
    image_a: str | Path,
    image_b: str | Path,
    masks: str | Path,
    out: str | Path,
    split: str = "train",
    size: int = 512,
    relabel: bool = True,
) -> Path:
    """The authors' preparation: cut every T1/T2 image and mask of the three folders (matched by file name) into
    ``size``×``size`` tiles (``clip_image.py``), convert the masks (``deal_hiucd.py``, unless ``relabel`` is false)
    and write the split list (``write_path.py``; paths relative to ``out``).

    Output: ``out/<split>/<A>_<size>/``, ``<B>_<size>/``, ``mask_<size>/`` (A, B = the input folder names, e.g.
    2017, 2018) with tiles ``{k}_{name}.png``, and ``out/<split>.txt``. Returns the list's path. Existing tiles
    are never overwritten (the command refuses).
    """
    image_a, image_b, masks, out = Path(image_a), Path(image_b), Path(masks), Path(out)
    files_a, names_b, names_m = _images(image_a), {p.name for p in _images(image_b)}, {p.name for p in _images(masks)}
    for path in files_a:
        for folder, names in ((image_b, names_b), (masks, names_m)):
            if path.name not in names:
                raise DataError(f"{folder / path.name}: missing (pairs are matched by file name with {path})")
    dirs = [
        out / split / f"{image_a.name}_{size}",
        out / split / f"{image_b.name}_{size}",
        out / split / f"mask_{size}",
    ]
    list_path = out / f"{split}.txt"
    for target in (*dirs, list_path):
        if target.exists():
            raise DataError(f"{target}: already exists (choose another --out or --split)")
    lines = []
    for path in files_a:
        pair = [read_image(path), read_image(image_b / path.name), read_image(masks / path.name)]
        for array, src in zip(pair[:2], (path, image_b / path.name), strict=True):
            if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
                raise DataError(f"{src}: expected an 8-bit RGB image, got {array.dtype} {array.shape}")
        if pair[2].ndim != 3 or pair[2].shape[2] != 3:
            raise DataError(f"{masks / path.name}: a Hi-UCD mask needs 3 channels, got shape {pair[2].shape}")
        for array, src in zip(pair[1:], (image_b / path.name, masks / path.name), strict=True):
            if array.shape[:2] != pair[0].shape[:2]:
                raise DataError(f"{src}: size {array.shape[:2]} differs from {path} {pair[0].shape[:2]}")
        if relabel:
            pair[2] = deal_hiucd(pair[2])
        stem = Path(path.name).with_suffix(".png").name
        for k, (y, x) in enumerate(clip_tiles(*pair[0].shape[:2], size, size)):
            name = f"{k}_{stem}"
            for folder, array in zip(dirs, pair, strict=True):
                folder.mkdir(parents=True, exist_ok=True)
                _atomic_write(folder / name, np.ascontiguousarray(array[y : y + size, x : x + size]))
            rel = [str((d / name).relative_to(out)) for d in dirs]
            lines.append(" ".join([rel[0], rel[1], rel[2], rel[2], rel[2]]))
    tmp = list_path.with_name(f".{list_path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, list_path)
    return list_path
