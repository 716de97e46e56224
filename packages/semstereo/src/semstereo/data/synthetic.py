"""Deterministic synthetic US3D-like pairs: orthographic city tiles with a class map and a signed-disparity right view.

Each tile is built from a height map: smooth terrain (ground), a river or pond (water) crossed by roads on bridges,
buildings with flat, stepped or gabled roofs of several heights, and trees. The left view is a top view textured
from the photos scikit-image ships (brick, gravel, grass, camera, moon, coffee, ...) tinted per class, with cast
shadows. The disparity is an affine function of position plus a multiple of the height, shifted into
``[dmin, dmax)`` (both signs occur). The right view forward-warps the left view with a z-buffer (higher surfaces
win; positive ``d`` moves left column ``x`` to right column ``x - d``), fills the disoccluded holes with facade
texture and applies another date's illumination (sun azimuth, so shadows move), radiometry (gain, bias, gamma,
noise) and a slight blur, as US3D's multi-date pairs.

Classes follow the training ids of US3D: 0 ground, 1 trees, 2 building, 3 water, 4 bridge/elevated road
(5 "unlabelled" is not generated).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from semstereo.transforms import to_tensor

GREY_TEXTURES = ("brick", "grass", "gravel", "camera", "moon")
COLOUR_TEXTURES = ("astronaut", "coffee", "chelsea", "rocket")
GROUND, TREES, BUILDING, WATER, BRIDGE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator settings; ``height``/``width`` must be multiples of 32, disparities lie in ``[dmin, dmax)``."""

    height: int = 64
    width: int = 64
    dmin: float = -12.0  # smallest disparity (px, may be negative)
    dmax: float = 12.0  # largest disparity (px)
    buildings_per_64px: float = 2.0  # mean building count per 64×64 area
    trees_per_64px: float = 4.0
    water_probability: float = 0.5
    noise: float = 0.02  # std of the per-view Gaussian noise (images in [0, 1])
    radiometric: float = 0.2  # max relative gain / gamma change of the right view (another acquisition date)
    sun_change: float = 0.8  # max change of the sun azimuth between the two dates (radians): shadows differ
    blur: float = 0.8  # max Gaussian blur sigma of the right view (another viewing angle / resolution)

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0 or self.height % 32 or self.width % 32:
            raise ValueError(
                f"SyntheticConfig: height/width must be positive multiples of 32, got {self.height}x{self.width}"
            )
        if not self.dmax > self.dmin:
            raise ValueError(f"SyntheticConfig: dmax ({self.dmax}) must exceed dmin ({self.dmin})")


@dataclass
class Scene:
    """One rendered tile: ``left``/``right`` uint8 H×W×3, ``disparity`` float32 H×W (left view, px), ``label``
    uint8 H×W (0..4), ``height`` float32 H×W (arbitrary units)."""

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    label: np.ndarray
    height: np.ndarray


def load_textures() -> dict[str, np.ndarray]:
    """The scikit-image photos used as textures, as float32 H×W×3 in [0, 1] (bundled with scikit-image)."""
    from skimage import data

    textures = {}
    for name in GREY_TEXTURES + COLOUR_TEXTURES:
        image = getattr(data, name)().astype(np.float32) / 255.0
        textures[name] = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return textures


class SceneRenderer:
    """Renders :class:`Scene` tiles; ``render(seed)`` is deterministic for a given config."""

    def __init__(self, config: SyntheticConfig | None = None, textures: dict[str, np.ndarray] | None = None) -> None:
        self.config = config or SyntheticConfig()
        self.textures = textures if textures is not None else load_textures()

    # -------------------------------------------------------------------------------------------- textures
    def _patch(self, rng: np.random.Generator, names: tuple[str, ...], shape: tuple[int, int]) -> np.ndarray:
        """A random crop of one texture, rescaled by a random factor to ``shape`` (float32 H×W×3)."""
        image = self.textures[names[rng.integers(len(names))]]
        scale = rng.uniform(0.6, 2.0)
        h, w = shape
        ch, cw = min(image.shape[0], max(4, int(h * scale))), min(image.shape[1], max(4, int(w * scale)))
        y, x = rng.integers(0, image.shape[0] - ch + 1), rng.integers(0, image.shape[1] - cw + 1)
        return cv2.resize(image[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR)

    def _tinted(
        self,
        rng: np.random.Generator,
        names: tuple[str, ...],
        shape: tuple[int, int],
        colour: np.ndarray,
        contrast: float,
    ) -> np.ndarray:
        """Texture luminance around its mean, scaled by ``contrast``, on a ``colour`` base."""
        patch = self._patch(rng, names, shape).mean(axis=2, keepdims=True)
        detail = (patch - patch.mean()) / (patch.std() + 1e-6)
        return np.clip(colour * (1 + contrast * detail), 0, 1).astype(np.float32)

    # ----------------------------------------------------------------------------------------------- scene
    def _layout(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """Height map, class map, road mask and the per-building masks (to texture each roof differently)."""
        cfg = self.config
        h, w = cfg.height, cfg.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        terrain = np.zeros((h, w), np.float32)
        for _ in range(3):
            fy, fx = rng.uniform(0.5, 2.0, 2) * 2 * np.pi / np.array([h, w])
            phase = rng.uniform(0, 2 * np.pi)
            terrain += rng.uniform(0.2, 0.6) * np.cos(fy * yy + fx * xx + phase)
        height = terrain.copy()
        label = np.full((h, w), GROUND, np.uint8)
        area = h * w / 4096.0
        if rng.random() < cfg.water_probability:
            if rng.random() < 0.5:  # river across the tile
                centre = rng.uniform(0.3, 0.7) * w + rng.uniform(2, 6) * np.sin(yy * rng.uniform(0.05, 0.15))
                water = np.abs(xx - centre) < rng.uniform(0.08, 0.18) * w
            else:  # pond
                cy, cx, ry, rx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, *rng.uniform(0.1, 0.25, 2) * h
                water = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            height[water] = terrain.min() - 0.5
            label[water] = WATER
        roads = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 3)):
            half = rng.uniform(1.5, 3.0) * max(1.0, w / 64)
            if rng.random() < 0.5:
                roads |= np.abs(yy - rng.uniform(0.1, 0.9) * h) < half
            else:
                roads |= np.abs(xx - rng.uniform(0.1, 0.9) * w) < half
        bridge = roads & (label == WATER)
        height[bridge] = terrain.max() + 1.5
        label[bridge] = BRIDGE
        free = (label == GROUND) & ~roads
        buildings = []
        for _ in range(rng.poisson(cfg.buildings_per_64px * area) + 1):
            bh, bw = rng.integers(max(6, h // 10), max(8, h // 3)), rng.integers(max(6, w // 10), max(8, w // 3))
            y0, x0 = rng.integers(0, h - bh), rng.integers(0, w - bw)
            mask = np.zeros((h, w), bool)
            mask[y0 : y0 + bh, x0 : x0 + bw] = True
            if (mask & ~free).mean() > 0.02:
                continue
            base = float(terrain[mask].max()) + rng.choice([3.0, 5.0, 8.0, 12.0])
            roof = np.full((h, w), base, np.float32)
            kind = rng.integers(3)
            if kind == 1:  # stepped roof: a higher block
                sub = np.zeros((h, w), bool)
                sub[y0 + bh // 4 : y0 + 3 * bh // 4, x0 + bw // 4 : x0 + 3 * bw // 4] = True
                roof[sub] += rng.choice([2.0, 4.0])
            elif kind == 2:  # gabled roof, ridge along the longer side
                if bw >= bh:
                    roof += 2.0 * (1 - np.abs(yy - (y0 + bh / 2)) / (bh / 2))
                else:
                    roof += 2.0 * (1 - np.abs(xx - (x0 + bw / 2)) / (bw / 2))
            height[mask] = roof[mask]
            label[mask] = BUILDING
            free &= ~mask
            buildings.append(mask)
        for _ in range(rng.poisson(cfg.trees_per_64px * area)):
            radius = rng.uniform(2, 5) * max(1.0, w / 64)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            dist2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2
            crown = (dist2 < 1) & free
            height[crown] = np.maximum(height[crown], terrain[crown] + rng.uniform(2, 4) * np.sqrt(1 - dist2[crown]))
            label[crown] = TREES
        return height, label, roads & (label == GROUND), buildings

    def _colour(
        self,
        rng: np.random.Generator,
        height: np.ndarray,
        label: np.ndarray,
        roads: np.ndarray,
        buildings: list[np.ndarray],
    ) -> np.ndarray:
        """Albedo of the top view in [0, 1]: per-class textures (float32 H×W×3)."""
        shape = label.shape
        ground = self._tinted(
            rng, ("grass", "gravel", "moon"), shape, rng.uniform([0.35, 0.35, 0.2], [0.55, 0.5, 0.35]), 0.25
        )
        image = ground
        road_colour = np.full(3, rng.uniform(0.25, 0.45), np.float32)
        image = np.where(roads[..., None], self._tinted(rng, ("gravel",), shape, road_colour, 0.08), image)
        water = self._tinted(rng, ("moon",), shape, rng.uniform([0.05, 0.15, 0.25], [0.15, 0.3, 0.45]), 0.05)
        image = np.where((label == WATER)[..., None], water, image)
        image = np.where(
            (label == BRIDGE)[..., None], self._tinted(rng, ("gravel",), shape, road_colour + 0.1, 0.1), image
        )
        trees = self._tinted(rng, ("grass",), shape, rng.uniform([0.1, 0.25, 0.05], [0.2, 0.4, 0.15]), 0.35)
        image = np.where((label == TREES)[..., None], trees, image)
        for mask in buildings:
            colour = rng.uniform(0.3, 0.85) * rng.uniform(0.75, 1.0, 3).astype(np.float32)
            names = GREY_TEXTURES if rng.random() < 0.7 else COLOUR_TEXTURES
            roof = self._tinted(rng, names, shape, colour, rng.uniform(0.05, 0.3))
            image = np.where(mask[..., None], roof, image)
        return np.clip(image, 0, 1).astype(np.float32)

    @staticmethod
    def _illuminate(albedo: np.ndarray, height: np.ndarray, sun: float) -> np.ndarray:
        """Slope shading and cast shadows for a sun at azimuth ``sun`` (radians)."""
        gy, gx = np.gradient(height)
        shading = np.clip(1 + 0.15 * (np.cos(sun) * gx + np.sin(sun) * gy), 0.6, 1.3)
        image = albedo * shading[..., None]
        shadow = np.zeros(height.shape, bool)
        dy, dx = np.sin(sun), np.cos(sun)
        for step in range(1, 12):
            shifted = np.roll(np.roll(height, round(step * dy), axis=0), round(step * dx), axis=1)
            shadow |= shifted > height + 0.8 * step
        image = np.where(shadow[..., None], image * 0.55, image)
        return np.clip(image, 0, 1).astype(np.float32)

    def _disparity(self, rng: np.random.Generator, height: np.ndarray) -> np.ndarray:
        """Affine-in-position plus height term, shifted to lie in ``[dmin, dmax)`` (float32 H×W)."""
        cfg = self.config
        h, w = height.shape
        span = cfg.dmax - cfg.dmin
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        per_height = rng.uniform(0.25, 0.6) * span / max(float(np.ptp(height)), 1e-3)
        tilt = rng.uniform(-0.1, 0.1, 2) * span
        disp = per_height * (height - height.min()) + tilt[0] * yy / h + tilt[1] * xx / w
        low, high = float(disp.min()), float(disp.max())
        offset = rng.uniform(cfg.dmin - low, max(cfg.dmin - low, cfg.dmax - 1e-3 - high))
        return (disp + offset).astype(np.float32)

    def _right_view(
        self, rng: np.random.Generator, left: np.ndarray, disparity: np.ndarray, height: np.ndarray
    ) -> np.ndarray:
        """Forward-warp ``left`` by ``disparity`` (4× supersampled along x) with a height z-buffer; fill holes."""
        h, w = disparity.shape
        factor = 4
        xs = (np.arange(w * factor, dtype=np.float32) + 0.5) / factor - 0.5
        x0 = np.clip(np.floor(xs).astype(np.int64), 0, w - 2)
        frac = np.clip(xs - x0, 0, 1)[None, :]
        near = np.clip(np.round(xs).astype(np.int64), 0, w - 1)
        colour = left[:, x0] * (1 - frac[..., None]) + left[:, x0 + 1] * frac[..., None]
        disp = disparity[:, x0] * (1 - frac) + disparity[:, x0 + 1] * frac
        target_x = np.round(xs[None, :] - disp).astype(np.int64)
        rows = np.broadcast_to(np.arange(h)[:, None], target_x.shape)
        inside = (target_x >= 0) & (target_x < w)
        target = (rows * w + target_x)[inside]
        z = height[:, near]
        zq = np.round((z - z.min()) * 1000).astype(np.int64)[inside]
        source = np.flatnonzero(inside.ravel())
        best = np.full(h * w, -1, np.int64)
        np.maximum.at(best, target, zq * (1 << 24) + np.arange(source.size))
        hit = best >= 0
        right = np.zeros((h * w, 3), np.float32)
        right[hit] = colour.reshape(-1, 3)[source[best[hit] & ((1 << 24) - 1)]]
        facade = self._tinted(rng, ("brick", "camera"), (h, w), np.full(3, rng.uniform(0.2, 0.4), np.float32), 0.3)
        right[~hit] = facade.reshape(-1, 3)[~hit]
        return right.reshape(h, w, 3)

    def _radiometry(self, rng: np.random.Generator, image: np.ndarray, changed: bool) -> np.ndarray:
        cfg = self.config
        if changed:
            gain = 1 + rng.uniform(-cfg.radiometric, cfg.radiometric, 3)
            gamma = 1 + rng.uniform(-cfg.radiometric, cfg.radiometric)
            image = np.clip(image * gain + rng.uniform(-0.03, 0.03), 0, 1) ** gamma
        image = image + rng.normal(0, cfg.noise, image.shape)
        return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)

    def render(self, seed: int) -> Scene:
        """The tile of ``seed`` (deterministic)."""
        rng = np.random.default_rng(seed)
        height, label, roads, buildings = self._layout(rng)
        albedo = self._colour(rng, height, label, roads, buildings)
        sun = rng.uniform(0, 2 * np.pi)
        top = self._illuminate(albedo, height, sun)
        second_date = self._illuminate(albedo, height, sun + rng.uniform(-1, 1) * self.config.sun_change)
        disparity = self._disparity(rng, height)
        right = self._right_view(rng, second_date, disparity, height)
        if self.config.blur:
            right = cv2.GaussianBlur(right, (0, 0), rng.uniform(0.3, self.config.blur))
        return Scene(
            left=self._radiometry(rng, top, changed=False),
            right=self._radiometry(rng, right, changed=True),
            disparity=disparity,
            label=label,
            height=height.astype(np.float32),
        )


def make_sample(left: np.ndarray, right: np.ndarray, disparity: np.ndarray, label: np.ndarray | None) -> dict:
    """A training/test sample dict like the original loaders: ``left``/``right`` 3×H×W (ImageNet-normalised),
    ``disparity`` H×W float32, ``disparity_4`` = ``disparity[::4, ::4]`` (cv2 nearest), ``label`` H×W float32."""
    sample = {
        "left": to_tensor(left)[0],
        "right": to_tensor(right)[0],
        "disparity": torch.from_numpy(np.ascontiguousarray(disparity, dtype=np.float32)),
    }
    sample["disparity_4"] = sample["disparity"][::4, ::4].contiguous()
    if label is not None:
        sample["label"] = torch.from_numpy(np.ascontiguousarray(label, dtype=np.float32))
    return sample


class SyntheticStereo(Dataset):
    """``length`` generated tiles; item ``i`` is the scene of seed ``seed * 1_000_003 + i`` (train and test sets
    use different ``seed`` values, so they never share a tile)."""

    def __init__(self, config: SyntheticConfig | None = None, length: int = 64, seed: int = 0) -> None:
        self.renderer = SceneRenderer(config)
        self.length = length
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.length:
            raise IndexError(f"SyntheticStereo: index {index} out of range [0, {self.length})")
        return self.renderer.render(self.seed * 1_000_003 + index)

    def __getitem__(self, index: int) -> dict:
        scene = self.scene(index)
        sample = make_sample(scene.left, scene.right, scene.disparity, scene.label)
        sample["name"] = f"synthetic_{self.seed}_{index:05d}"
        return sample
