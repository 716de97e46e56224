"""US3D (DFC2019 track 2) epipolar pairs as the authors read them (``datasets/us3d_.py``).

Per pair four GeoTIFFs named in a split-list line ``left right disp label`` relative to the root:
``*_LEFT_RGB.tif`` / ``*_RIGHT_RGB.tif`` (8-bit RGB), ``*_LEFT_DSP.tif`` (float32 left-view disparity, -999 =
no data, signed) and ``*_LEFT_CLS.tif`` (class map). The network uses training ids 0..5 (5 = unlabelled); the raw
DFC2019 files hold LAS codes, mapped by :data:`LAS_TO_TRAIN` (``label_codes="las"`` or ``semstereo
prepare-us3d``). Full 1024×1024 tiles, no augmentation (the authors' recipe); an optional centre/random crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from semcommon.io import ImageReadError, read_image
from semstereo.data.splits import read_split_list, resolve
from semstereo.data.synthetic import make_sample
from semstereo.transforms import read_pair

#: DFC2019 LAS class codes -> training ids (the spec's assumption, ordered by LAS code; not in the authors' code).
LAS_TO_TRAIN: dict[int, int] = {2: 0, 5: 1, 6: 2, 9: 3, 17: 4, 65: 5}
NODATA = -999.0
LabelCodes = Literal["train", "las"]


def map_las_codes(codes: np.ndarray, path: str | Path) -> np.ndarray:
    """LAS-coded class map -> uint8 training ids; an unknown code raises naming the file."""
    values = np.round(codes).astype(np.int64)
    unknown = sorted(set(np.unique(values).tolist()) - set(LAS_TO_TRAIN))
    if unknown:
        raise ImageReadError(f"{path}: unknown LAS class code(s) {unknown[:5]} (expected {sorted(LAS_TO_TRAIN)})")
    lookup = np.zeros(max(LAS_TO_TRAIN) + 1, np.uint8)
    for code, train_id in LAS_TO_TRAIN.items():
        lookup[code] = train_id
    return lookup[values]


def read_label(path: str | Path, codes: LabelCodes = "train") -> np.ndarray:
    """A ``*_LEFT_CLS.tif`` as uint8 training ids 0..5 (``codes="las"`` maps the raw DFC2019 codes first)."""
    raw = read_image(path)
    if raw.ndim != 2:
        raise ImageReadError(f"{path}: a class map must be single-band, got shape {raw.shape}")
    if codes == "las":
        return map_las_codes(raw, path)
    values = raw.astype(np.float64)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 5 or (values != np.round(values)).any():
        found = sorted(np.unique(values[np.isfinite(values)]).tolist())[:8]
        raise ImageReadError(
            f"{path}: class ids must be integers 0..5, found {found} (raw LAS codes? use label_codes='las' or "
            "`semstereo prepare-us3d`)"
        )
    return values.astype(np.uint8)


def read_us3d_disparity(path: str | Path) -> np.ndarray:
    """A ``*_LEFT_DSP.tif`` as float32 H×W (-999 kept as the no-data value; NaN/Inf refused)."""
    disparity = read_image(path)
    if disparity.ndim != 2:
        raise ImageReadError(f"{path}: a disparity map must be single-band, got shape {disparity.shape}")
    if not np.issubdtype(disparity.dtype, np.floating):
        raise ImageReadError(f"{path}: disparity dtype {disparity.dtype}, expected float32 (-999 = no data)")
    if not np.isfinite(disparity).all():
        raise ImageReadError(f"{path}: disparity contains NaN or infinite values (no data must be -999)")
    return disparity.astype(np.float32)


def crop_window(shape: tuple[int, int], crop: tuple[int, int] | None, random: bool = False) -> tuple[slice, slice]:
    """Centre or random (torch's RNG, so seeded and resumable by the training frame) crop of ``crop = (h, w)``;
    ``crop=None`` keeps the full tile."""
    height, width = shape
    if crop is None:
        return slice(0, height), slice(0, width)
    ch, cw = crop
    if ch > height or cw > width:
        raise ValueError(f"crop {ch}x{cw} is larger than the {height}x{width} tile")
    y = int(torch.randint(0, height - ch + 1, ())) if random else (height - ch) // 2
    x = int(torch.randint(0, width - cw + 1, ())) if random else (width - cw) // 2
    return slice(y, y + ch), slice(x, x + cw)


class US3DDataset(Dataset):
    """Samples of one US3D split list (``JAX/train.txt`` etc.) under ``root``; each sample is validated."""

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        label_codes: LabelCodes = "train",
        crop: tuple[int, int] | None = None,
        random_crop: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder not found")
        list_path = Path(list_file) if Path(list_file).is_absolute() else self.root / list_file
        self.rows = read_split_list(list_path, 4)
        self.label_codes = label_codes
        self.crop = crop
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
        """Validated ``left, right`` (uint8 H×W×3), ``disparity`` (float32), ``label`` (uint8) and the name."""
        left_path, right_path, disp_path, label_path = (resolve(self.root, p) for p in self.rows[index])
        left, right = read_pair(left_path, right_path)
        if left.dtype != np.uint8:
            raise ImageReadError(f"{left_path}: dtype {left.dtype}, expected 8-bit RGB")
        disparity = read_us3d_disparity(disp_path)
        label = read_label(label_path, self.label_codes)
        for path, array in ((disp_path, disparity), (label_path, label)):
            if array.shape != left.shape[:2]:
                raise ImageReadError(
                    f"{path}: size {array.shape[1]}x{array.shape[0]} does not match {left_path} "
                    f"({left.shape[1]}x{left.shape[0]})"
                )
        return left, right, disparity, label, Path(left_path).name.replace("_LEFT_RGB.tif", "")

    def __getitem__(self, index: int) -> dict:
        left, right, disparity, label, name = self.read(index)
        ys, xs = crop_window(disparity.shape, self.crop, self.random_crop)
        sample = make_sample(left[ys, xs], right[ys, xs], disparity[ys, xs], label[ys, xs])
        sample["name"] = name
        return sample
