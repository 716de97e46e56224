"""Synthetic homography pairs textured with the photographs scikit-image ships (stage-1 training data, demo data).

Each pair is two warps of one random region of a photo: ``image1`` sees the region under a harder random
perspective (rotation, scale, corner perturbation) than ``image0``; both get photometric augmentation (gain,
bias, gamma, blur, noise). ``H_0to1`` (3×3) maps pixel ``(x, y, 1)`` of image 0 to image 1. A pair is a pure
function of ``(seed, index)``: the same call gives the same pixels on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from torch.utils.data import Dataset

from semcommon.io import read_image

TRAIN_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "camera",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "moon",
    "grass",
    "page",
)
HELD_OUT_PHOTOS: tuple[str, ...] = ("chelsea", "rocket", "coins", "gravel")


@dataclass
class SyntheticConfig:
    """Pair generation. Angles in degrees, sizes in pixels; ``perturbation`` is a fraction of the image side."""

    height: int = 192
    width: int = 192
    num_pairs: int = 1000
    seed: int = 0
    photos: tuple[str, ...] = TRAIN_PHOTOS
    max_rotation: float = 30.0
    scale_range: tuple[float, float] = (0.7, 1.3)
    perturbation: float = 0.15
    photometric: bool = True


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photo as grey float32 ``H×W`` in [0, 1]."""
    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32) / 255.0


def _quad(
    rng: np.random.Generator,
    center: np.ndarray,
    half: np.ndarray,
    rotation: float,
    scale: float,
    perturbation: float,
) -> np.ndarray:
    """Four corners (TL, TR, BR, BL) of a rotated, scaled, perturbed rectangle, ``4×2``."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half * scale
    corners += rng.uniform(-perturbation, perturbation, (4, 2)) * 2 * half
    angle = np.deg2rad(rotation)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rot.T + center


def _photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    image = image * rng.uniform(0.6, 1.4) + rng.uniform(-0.15, 0.15)
    image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    image = image + rng.normal(0, rng.uniform(0.0, 0.04), image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def homography_pair(
    photo: np.ndarray, rng: np.random.Generator, cfg: SyntheticConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image0, image1, H_0to1)`` from one photo; images ``H×W`` float32 in [0, 1]."""
    h, w = cfg.height, cfg.width
    ph, pw = photo.shape
    out = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    half = np.array([w, h], dtype=np.float64) / 2 * min(1.0, 0.5 * min(ph / h, pw / w))
    for _ in range(20):
        center = np.array([rng.uniform(0.3, 0.7) * pw, rng.uniform(0.3, 0.7) * ph])
        quad0 = _quad(rng, center, half, rng.uniform(-5, 5), rng.uniform(0.9, 1.1), cfg.perturbation / 4)
        quad1 = _quad(
            rng,
            center,
            half,
            rng.uniform(-cfg.max_rotation, cfg.max_rotation),
            rng.uniform(*cfg.scale_range),
            cfg.perturbation,
        )
        quads = np.concatenate([quad0, quad1])
        if (quads >= 0).all() and (quads[:, 0] <= pw - 1).all() and (quads[:, 1] <= ph - 1).all():
            break
    H0 = cv2.getPerspectiveTransform(quad0.astype(np.float32), out)  # photo -> image 0
    H1 = cv2.getPerspectiveTransform(quad1.astype(np.float32), out)  # photo -> image 1
    image0 = cv2.warpPerspective(photo, H0, (w, h), flags=cv2.INTER_LINEAR)
    image1 = cv2.warpPerspective(photo, H1, (w, h), flags=cv2.INTER_LINEAR)
    if cfg.photometric:
        image0, image1 = _photometric(rng, image0), _photometric(rng, image1)
    H_0to1 = H1 @ np.linalg.inv(H0)
    return image0, image1, H_0to1 / H_0to1[2, 2]


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursive, sorted); a missing or image-less folder is named."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data: image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--data: no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return files


def read_photo(path: Path) -> np.ndarray:
    """An image file as grey float32 ``H×W`` in [0, 1] (8/16-bit, grey/RGB/RGBA), validated."""
    image = read_image(path)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: expected an 8- or 16-bit image, got {image.dtype}")
    top = 255.0 if image.dtype == np.uint8 else 65535.0
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    if min(image.shape) < 32:
        raise ValueError(f"{path}: image too small for homography pairs ({image.shape[1]}×{image.shape[0]})")
    return image.astype(np.float32) / top


class SyntheticHomographies(Dataset):
    """``num_pairs`` deterministic pairs: item ``{"image0", "image1"}`` ``1×H×W`` float in [0, 1], ``"H_0to1"`` 3×3
    (float64), ``"name"``. Textures: the scikit-image ``config.photos``, or the files ``images`` (any folder, read
    when a pair needs them; stage 1 on your own photos)."""

    def __init__(self, config: SyntheticConfig | None = None, images: list[Path] | None = None) -> None:
        self.config = config or SyntheticConfig()
        self.files = images
        if images is None:
            if not self.config.photos:
                raise ValueError("SyntheticConfig.photos is empty")
            self.photos: list[np.ndarray] = [load_photo(name) for name in self.config.photos]
            self.names: list[str] = list(self.config.photos)
        else:
            if not images:
                raise ValueError("SyntheticHomographies: the image list is empty")
            self.names = [p.stem for p in images]

    def __len__(self) -> int:
        return self.config.num_pairs

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.config.seed, index])
        photo_index = int(rng.integers(len(self.names)))
        photo = self.photos[photo_index] if self.files is None else read_photo(self.files[photo_index])
        image0, image1, H = homography_pair(photo, rng, self.config)
        return {
            "image0": torch.from_numpy(image0)[None],
            "image1": torch.from_numpy(image1)[None],
            "H_0to1": torch.from_numpy(H),
            "name": f"{self.names[photo_index]}_{index:05d}",
        }
