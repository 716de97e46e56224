"""HPatches sequences (homography protocol), the released layout read as is::

    ROOT/i_<name>/1.ppm ... 6.ppm, H_1_2 ... H_1_6     (illumination changes)
    ROOT/v_<name>/1.ppm ... 6.ppm, H_1_2 ... H_1_6     (viewpoint changes)

``H_1_k`` is a text file with a 3×3 homography (whitespace-separated, 3 rows) mapping pixels of ``1.ppm`` to
``k.ppm``. Every sequence yields five pairs ``(1, k)``, k = 2..6. Images are read as grey float in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from semcommon.io import read_image


def read_homography(path: Path) -> np.ndarray:
    """A 3×3 homography text file, validated (numeric, finite, invertible)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: homography file not found")
    try:
        H = np.loadtxt(path, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a numeric 3×3 homography ({exc})") from None
    if H.shape != (3, 3) or not np.isfinite(H).all() or abs(np.linalg.det(H)) < 1e-12:
        raise ValueError(f"{path}: expected a finite invertible 3×3 homography, got shape {H.shape}")
    return H / H[2, 2]


def read_gray(path: Path) -> np.ndarray:
    """A PPM/PNG/JPEG file as grey float32 ``H×W`` in [0, 1] (8 or 16 bit)."""
    image = read_image(path)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: expected an 8- or 16-bit image, got {image.dtype}")
    top = 255.0 if image.dtype == np.uint8 else 65535.0
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32) / top


class HPatches(Dataset):
    """Pairs ``(1.ppm, k.ppm)`` of every ``i_*``/``v_*`` sequence: items ``image0``/``image1`` ``1×H×W``,
    ``H_0to1`` 3×3, ``name`` (``<seq>_1_<k>``), ``scene_type`` (``i`` or ``v``)."""

    def __init__(self, root: str | Path, max_size: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"HPatches root not found: {self.root}")
        sequences = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name[:2] in ("i_", "v_"))
        if not sequences:
            raise ValueError(f"{self.root}: no i_*/v_* sequence folders (HPatches layout)")
        self.max_size = max_size
        self.items = [(seq, k) for seq in sequences for k in range(2, 7)]

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, path: Path) -> tuple[np.ndarray, float]:
        image = read_gray(path)
        scale = 1.0
        if self.max_size is not None and max(image.shape) > self.max_size:
            scale = self.max_size / max(image.shape)
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image, scale

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        seq, k = self.items[index]
        image0, s0 = self._load(seq / "1.ppm")
        image1, s1 = self._load(seq / f"{k}.ppm")
        H = read_homography(seq / f"H_1_{k}")
        H = np.diag([s1, s1, 1.0]) @ H @ np.diag([1 / s0, 1 / s0, 1.0])
        return {
            "image0": torch.from_numpy(image0)[None],
            "image1": torch.from_numpy(image1)[None],
            "H_0to1": torch.from_numpy(H / H[2, 2]),
            "name": f"{seq.name}_1_{k}",
            "scene_type": seq.name[0],
        }
