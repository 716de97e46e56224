"""Deterministic synthetic bi-temporal scenes for semantic change detection (tests and the demo).

Land-cover layouts (smooth random fields for water / grass / bare land / woodland, straight roads, rectangular
buildings) are rendered with textures cut from the photographs scikit-image ships (grass, gravel, brick, moon),
tinted per class. The T2 scene applies realistic changes — new buildings on open land, cleared woodland, demolished
buildings, a changed water level — and nuisance changes that are *not* labelled as change: global illumination,
a seasonal tint of the vegetation, sensor noise and a misregistration of the T2 image by up to 2 pixels. Some
samples have an unlabelled rectangle (semantic C, change 255), as Hi-UCD does. Classes use Hi-UCD's indices
(0 water, 1 grass, 2 building, 4 road, 7 bare land, 8 woodland; 3, 5, 6 never occur).

Every sample is a pure function of (seed, index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from clearscd.data.common import BCD_IGNORE, to_tensors
from clearscd.data.transforms import PairAugment

__all__ = ["SyntheticSCD", "TextureBank", "make_scene", "write_hiucd_layout"]

WATER, GRASS, BUILDING, ROAD, BARE, WOOD = 0, 1, 2, 4, 7, 8
NUM_CLASSES = 9

# class -> (texture name, base RGB, texture contrast)
_LOOK = {
    WATER: ("moon", (45, 75, 110), 0.25),
    GRASS: ("grass", (120, 160, 75), 0.6),
    BUILDING: ("brick", (175, 95, 85), 0.35),
    ROAD: ("gravel", (125, 125, 128), 0.2),
    BARE: ("gravel", (165, 135, 95), 0.5),
    WOOD: ("grass", (45, 90, 40), 0.9),
}
_ROOFS = ((175, 95, 85), (150, 150, 158), (120, 70, 60), (200, 190, 170))


class TextureBank:
    """Grey-level photo textures of scikit-image (loaded once per instance), as float arrays in [-1, 1]."""

    def __init__(self) -> None:
        import skimage.data

        self.textures = {}
        for name in ("grass", "gravel", "brick", "moon"):
            tex = getattr(skimage.data, name)().astype(np.float32)
            self.textures[name] = (tex - tex.mean()) / (3 * tex.std() + 1e-6)

    def patch(self, name: str, size: int, rng: np.random.Generator) -> np.ndarray:
        """A size×size crop at a random position and scale (0.5–1.5 texture pixels per output pixel)."""
        tex = self.textures[name]
        crop = int(np.clip(size * rng.uniform(0.5, 1.5), 8, tex.shape[0]))
        y, x = rng.integers(0, tex.shape[0] - crop + 1, size=2)
        return cv2.resize(tex[y : y + crop, x : x + crop], (size, size), interpolation=cv2.INTER_LINEAR)


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """T1 land cover: natural classes from smooth fields, then roads and buildings on top."""
    cells = max(3, size // 24)
    natural = (WATER, GRASS, BARE, WOOD)
    bias = np.array([-0.6, 0.3, -0.1, 0.1], dtype=np.float32)[:, None, None]
    fields = np.stack([_smooth_field(rng, size, cells) for _ in natural]) + bias
    sem = np.asarray(natural, dtype=np.int64)[fields.argmax(0)]
    for _ in range(int(rng.integers(1, 3))):
        width = int(rng.integers(max(2, size // 40), max(3, size // 16) + 1))
        pos = int(rng.integers(0, size - width))
        if rng.random() < 0.5:
            sem[pos : pos + width] = ROAD
        else:
            sem[:, pos : pos + width] = ROAD
    for _ in range(int(rng.integers(2, 6))):
        _place_building(rng, sem, allowed=(GRASS, BARE))
    return sem


def _place_building(rng: np.random.Generator, sem: np.ndarray, allowed: tuple[int, ...]) -> bool:
    """Put a rectangle of BUILDING where the land is mostly of the ``allowed`` classes; False if none fits."""
    size = sem.shape[0]
    for _ in range(10):
        h, w = (int(v) for v in rng.integers(max(4, size // 12), max(6, size // 5) + 1, size=2))
        y, x = (int(v) for v in rng.integers(0, size - max(h, w), size=2))
        region = sem[y : y + h, x : x + w]
        if np.isin(region, allowed).mean() > 0.9:
            region[np.isin(region, allowed)] = BUILDING
            return True
    return False


def _changes(rng: np.random.Generator, sem_A: np.ndarray) -> np.ndarray:
    """T2 land cover: new buildings, cleared woodland, demolished buildings, water level."""
    sem = sem_A.copy()
    size = sem.shape[0]
    for _ in range(int(rng.integers(1, 4))):
        _place_building(rng, sem, allowed=(GRASS, BARE))
    if rng.random() < 0.6 and (sem == WOOD).any():
        ys, xs = np.nonzero(sem == WOOD)
        i = int(rng.integers(len(ys)))
        blob = np.zeros_like(sem, dtype=np.uint8)
        axes = (int(rng.integers(size // 10, size // 4)), int(rng.integers(size // 10, size // 4)))
        cv2.ellipse(blob, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        sem[(blob == 1) & (sem == WOOD)] = BARE
    if rng.random() < 0.3:
        labels_count, comps = cv2.connectedComponents((sem_A == BUILDING).astype(np.uint8))
        if labels_count > 1:
            sem[(comps == int(rng.integers(1, labels_count))) & (sem == BUILDING)] = BARE
    if rng.random() < 0.6 and (sem == WATER).any():
        radius = int(rng.integers(2, max(3, size // 20) + 1))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        water = (sem == WATER).astype(np.uint8)
        if rng.random() < 0.5:
            flooded = (cv2.dilate(water, kernel) == 1) & np.isin(sem, (GRASS, BARE, WOOD))
            sem[flooded] = WATER
        else:
            sem[(cv2.erode(water, kernel) == 0) & (water == 1)] = GRASS
    return sem


def _render(
    sem: np.ndarray, patches: dict[int, np.ndarray], roof: tuple[int, int, int], tint: np.ndarray
) -> np.ndarray:
    image = np.zeros((*sem.shape, 3), dtype=np.float32)
    for cls, (_, base, contrast) in _LOOK.items():
        mask = sem == cls
        if not mask.any():
            continue
        colour = np.asarray(roof if cls == BUILDING else base, dtype=np.float32)
        if cls in (GRASS, WOOD):
            colour = colour * tint
        shade = 1.0 + contrast * patches[cls][mask]
        image[mask] = colour[None, :] * shade[:, None]
    return cv2.GaussianBlur(image, (3, 3), 0.7)


def make_scene(rng: np.random.Generator, size: int, bank: TextureBank) -> dict[str, Any]:
    """One bi-temporal pair as a sample dict (see :mod:`clearscd.data.common`)."""
    sem_A = _layout(rng, size)
    sem_B = _changes(rng, sem_A)
    patches = {cls: bank.patch(name, size, rng) for cls, (name, _, _) in _LOOK.items()}
    roof = _ROOFS[int(rng.integers(len(_ROOFS)))]
    image_A = _render(sem_A, patches, roof, np.ones(3, np.float32))
    season = np.asarray([rng.uniform(1.0, 1.35), rng.uniform(0.85, 1.0), rng.uniform(0.7, 0.95)], np.float32)
    image_B = _render(sem_B, patches, roof, season) * rng.uniform(0.75, 1.25)
    dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    image_B = cv2.warpAffine(image_B, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
    image_A = image_A + rng.normal(0, 3, image_A.shape)
    image_B = image_B + rng.normal(0, 3, image_B.shape)
    bcd = (sem_A != sem_B).astype(np.int64)
    if rng.random() < 0.3:
        h, w = (int(v) for v in rng.integers(size // 8, size // 3, size=2))
        y, x = (int(v) for v in rng.integers(0, size - max(h, w), size=2))
        sem_A[y : y + h, x : x + w] = NUM_CLASSES
        sem_B[y : y + h, x : x + w] = NUM_CLASSES
        bcd[y : y + h, x : x + w] = BCD_IGNORE
    return {
        "image_A": np.clip(image_A, 0, 255).astype(np.uint8),
        "image_B": np.clip(image_B, 0, 255).astype(np.uint8),
        "sem_A": sem_A,
        "sem_B": sem_B,
        "bcd": bcd,
    }


class SyntheticSCD(Dataset):
    """``num_samples`` generated pairs of ``size``×``size``; sample i depends only on (seed, i).

    ``augment`` applies the training augmentation (:class:`PairAugment`, output size unchanged) with randomness
    drawn from torch's RNG. Items are the authors' batch dicts (``img_A``, ``img_B``, ``label_SGA``, ``label_SGB``,
    ``label_BCD``, ``name``).
    """

    num_classes = NUM_CLASSES

    def __init__(self, num_samples: int = 16, size: int = 128, seed: int = 0, augment: bool = False) -> None:
        if num_samples < 1 or size < 32:
            raise ValueError(f"SyntheticSCD needs num_samples >= 1 and size >= 32, got {num_samples}, {size}")
        self.num_samples, self.size, self.seed = num_samples, size, seed
        self.augment = PairAugment(NUM_CLASSES, size=size) if augment else None
        self.bank = TextureBank()

    def __len__(self) -> int:
        return self.num_samples

    def sample(self, index: int) -> dict[str, Any]:
        """The raw sample (uint8 images, int64 labels) of ``index``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        rng = np.random.default_rng([self.seed, index])
        scene = make_scene(rng, self.size, self.bank)
        scene["name"] = f"synthetic_{self.seed}_{index:05d}"
        return scene

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.sample(index)
        if self.augment is not None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            scene = self.augment(scene, np.random.default_rng(seed))
        return to_tensors(scene)


def write_hiucd_layout(root: str | Path, dataset: SyntheticSCD, split: str = "test", years=("2018", "2019")) -> Path:
    """Write ``dataset`` in the processed Hi-UCD mini layout: ``root/<split>/<y1>_512/<name>.png``, ``<y2>_512``,
    ``mask_512`` (3-channel mask: T1, T2 semantic, change; after deal_hiucd) and the split list ``root/<split>.txt``
    (five paths per line, relative to ``root``). Returns the list's path."""
    from semcommon.io import write_image

    root = Path(root)
    lines = []
    for index in range(len(dataset)):
        scene = dataset.sample(index)
        name = f"{scene['name']}.png"
        rel = [f"{split}/{years[0]}_512/{name}", f"{split}/{years[1]}_512/{name}", f"{split}/mask_512/{name}"]
        write_image(root / rel[0], scene["image_A"])
        write_image(root / rel[1], scene["image_B"])
        mask = np.stack([scene["sem_A"], scene["sem_B"], scene["bcd"]], axis=-1).astype(np.uint8)
        write_image(root / rel[2], mask)
        lines.append(" ".join([rel[0], rel[1], rel[2], rel[2], rel[2]]))
    list_path = root / f"{split}.txt"
    list_path.write_text("\n".join(lines) + "\n")
    return list_path
