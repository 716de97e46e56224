"""Cityscapes fine annotations in the download layout (spec §e): images, label ids → 19 trainIds.

Layout read::

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      (uint8 label ids 0..33)

Label ids map to trainIds road 0 … bicycle 18; every other id (and the license plate, −1) → 255 (ignored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from semcommon.io import read_image
from sgdepth_pkd.data.common import IGNORE_LABEL, AugmentConfig, segmentation_sample
from sgdepth_pkd.data.synthetic import item_rng
from sgdepth_pkd.inference import read_rgb

__all__ = ["ID_TO_TRAINID", "CityscapesDataset", "label_ids_to_train_ids"]

ID_TO_TRAINID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
"""Cityscapes label id → trainId (ids not listed → 255)."""

_LUT = np.full(256, IGNORE_LABEL, dtype=np.uint8)
for _id, _train in ID_TO_TRAINID.items():
    _LUT[_id] = _train


def label_ids_to_train_ids(ids: np.ndarray, path: str | Path = "labels") -> np.ndarray:
    """H×W uint8 label ids → H×W uint8 trainIds; ids above 33 raise naming ``path``."""
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise ValueError(f"{path}: expected an H×W uint8 label-id image, got {ids.dtype} {ids.shape}")
    if ids.max() > 33:
        raise ValueError(f"{path}: label id {int(ids.max())} is outside Cityscapes' 0..33")
    return _LUT[ids]


class CityscapesDataset(Dataset):
    """Segmentation samples of one Cityscapes split at ``size`` (training crops with ``augment``, spec §d:
    flip, resize to ``resize`` = 512×1024, rescale by U(1, 1.5), crop, jitter)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] = (192, 640),
        augment: AugmentConfig | None = None,
        resize: tuple[int, int] = (512, 1024),
    ) -> None:
        self.root = Path(root)
        images = self.root / "leftImg8bit" / split
        if not images.is_dir():
            raise FileNotFoundError(f"{images}: Cityscapes image folder not found")
        self.images = sorted(images.glob("*/*_leftImg8bit.png"))
        if not self.images:
            raise FileNotFoundError(f"{images}: no *_leftImg8bit.png files")
        self.size, self.augment, self.resize = size, augment, resize

    def __len__(self) -> int:
        return len(self.images)

    def label_path(self, image: Path) -> Path:
        stem = image.name[: -len("_leftImg8bit.png")]
        return self.root / "gtFine" / image.parent.parent.name / image.parent.name / f"{stem}_gtFine_labelIds.png"

    def __getitem__(self, index: int) -> dict:
        path = self.images[index]
        image = read_rgb(path)
        label_path = self.label_path(path)
        ids = read_image(label_path, dtype=np.uint8)
        if ids.ndim == 3:
            raise ValueError(f"{label_path}: expected a single-channel label-id image, got {ids.shape[2]} channels")
        if ids.shape != image.shape[:2]:
            raise ValueError(f"{label_path}: size {ids.shape} differs from {path.name}'s {image.shape[:2]}")
        labels = label_ids_to_train_ids(ids, label_path)
        return segmentation_sample(
            image, labels, self.size, item_rng(self.augment), self.augment, self.resize, name=path.stem
        )
