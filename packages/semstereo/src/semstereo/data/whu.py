"""WHU aerial stereo (WHU_MVS_Stereo, stereo part) as the authors' ``WhuDataset`` reads it.

Split-list lines ``left right disp`` relative to the root; images RGB (grey images are replicated to 3 channels,
as PIL ``convert("RGB")``); disparity a 16-bit PNG divided by 256; valid ``0 < d < 128``; no labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from semcommon.io import ImageReadError, read_image
from semstereo.data.splits import read_split_list, resolve
from semstereo.data.synthetic import make_sample
from semstereo.data.us3d import crop_window
from semstereo.transforms import read_pair

DISPARITY_SCALE = 256.0


def read_whu_disparity(path: str | Path) -> np.ndarray:
    """A WHU 16-bit disparity PNG as float32 pixels (stored value / 256)."""
    raw = read_image(path)
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise ImageReadError(f"{path}: expected a single-band 16-bit PNG disparity, got {raw.dtype} {raw.shape}")
    return raw.astype(np.float32) / DISPARITY_SCALE


class WHUDataset(Dataset):
    """Samples of one WHU split list under ``root`` (no ``label`` entry); each sample is validated."""

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        crop: tuple[int, int] | None = None,
        random_crop: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder not found")
        list_path = Path(list_file) if Path(list_file).is_absolute() else self.root / list_file
        self.rows = read_split_list(list_path, 3)
        self.crop = crop
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        left_path, right_path, disp_path = (resolve(self.root, p) for p in self.rows[index])
        left, right = read_pair(left_path, right_path)
        if left.dtype != np.uint8:
            raise ImageReadError(f"{left_path}: dtype {left.dtype}, expected 8-bit images")
        disparity = read_whu_disparity(disp_path)
        if disparity.shape != left.shape[:2]:
            raise ImageReadError(
                f"{disp_path}: size {disparity.shape[1]}x{disparity.shape[0]} does not match {left_path} "
                f"({left.shape[1]}x{left.shape[0]})"
            )
        return left, right, disparity, Path(left_path).stem

    def __getitem__(self, index: int) -> dict:
        left, right, disparity, name = self.read(index)
        ys, xs = crop_window(disparity.shape, self.crop, self.random_crop)
        sample = make_sample(left[ys, xs], right[ys, xs], disparity[ys, xs], None)
        sample["name"] = name
        return sample
