"""Synthetic UAV video: a moving, slowly rotating camera over a large labelled aerial scene (UAVid's 8 classes).

Each clip gets its own scene (``scene_size``², seeded): low vegetation everywhere, water bodies, roads, buildings
with roofs, trees, vehicles on the roads and people, every class textured with a tinted photo that scikit-image
ships (grass, gravel, brick, moon, coffee, camera, astronaut). The camera flies a straight line at ``speed`` scene
pixels per frame, turns by ``rotation`` radians per frame, at a per-clip altitude (scale). Frames are the scene
warped by the camera homography (bilinear; labels nearest), plus per-frame sensor noise and brightness flicker,
so a per-frame segmenter flickers where SSP's propagation can help. Labels exist on every ``label_every``-th frame
(the clip's last frame is labelled, as in UAVid); the exact previous -> current homographies are known.
Deterministic for a given config (NumPy generator seeded with ``seed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from semcommon.io import write_image
from ssp.data.clips import ClipSource
from ssp.data.tables import UAVID

__all__ = ["SyntheticClips", "SyntheticConfig", "write_synthetic_dataset"]

ROAD, VEGETATION, TREE, PERSON, VEHICLE, WATER, BUILDING, ROOF = range(8)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and motion of the generated clips (frame ``size`` = (H, W), multiples of 32 for Hiera)."""

    num_clips: int = 4
    frames_per_clip: int = 8
    size: tuple[int, int] = (128, 160)
    scene_size: int = 640
    label_every: int = 4
    speed: float = 4.0
    rotation: float = 0.01
    noise: float = 10.0
    flicker: float = 0.08
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size[0] % 32 or self.size[1] % 32 or min(self.size) < 32:
            raise ValueError(f"size: H and W must be positive multiples of 32, got {self.size}")
        if self.num_clips < 1 or self.frames_per_clip < 2 or self.label_every < 1:
            raise ValueError("num_clips >= 1, frames_per_clip >= 2 and label_every >= 1 are required")
        travel = self.speed * self.frames_per_clip + 1.5 * math.hypot(*self.size)
        if travel > 0.9 * self.scene_size:
            raise ValueError(f"scene_size {self.scene_size} too small for frames {self.size} and speed {self.speed}")


@cache
def _textures(size: int) -> dict[int, np.ndarray]:
    """Grey texture in [0, 1] per class, ``size``², from scikit-image's photos."""
    from skimage import data

    def grey(image: np.ndarray, scale: float = 1.0) -> np.ndarray:
        image = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        reps = (math.ceil(size / image.shape[0]), math.ceil(size / image.shape[1]))
        tiled = np.tile(image, reps)[:size, :size].astype(np.float32)
        return (tiled - tiled.min()) / max(float(tiled.max() - tiled.min()), 1.0)

    return {
        ROAD: grey(data.gravel(), 0.6),
        VEGETATION: grey(data.grass()),
        TREE: grey(data.grass(), 0.4),
        PERSON: grey(data.astronaut()),
        VEHICLE: grey(data.coffee()),
        WATER: grey(data.moon(), 1.5),
        BUILDING: grey(data.brick(), 0.5),
        ROOF: grey(data.camera()),
    }


_BASE_COLOURS = {
    ROAD: (105, 100, 95), VEGETATION: (110, 150, 60), TREE: (40, 85, 35), PERSON: (230, 60, 60),
    VEHICLE: (50, 70, 170), WATER: (45, 80, 130), BUILDING: (175, 120, 90), ROOF: (150, 150, 160),
}  # fmt: skip
_CONTRAST = {ROAD: 0.5, VEGETATION: 0.6, TREE: 0.8, PERSON: 0.3, VEHICLE: 0.4, WATER: 0.3, BUILDING: 0.6, ROOF: 0.6}


def _rotated_rect(centre: tuple[float, float], size: tuple[float, float], angle: float) -> np.ndarray:
    return cv2.boxPoints((centre, size, angle)).astype(np.int32)


def _scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A labelled aerial scene: (uint8 RGB ``size×size×3``, uint8 train ids ``size×size``)."""
    labels = np.full((size, size), VEGETATION, np.uint8)
    for _ in range(rng.integers(1, 3)):
        centre = tuple(int(v) for v in rng.uniform(0, size, 2))
        axes = tuple(int(v) for v in rng.uniform(size * 0.06, size * 0.14, 2))
        cv2.ellipse(labels, centre, axes, float(rng.uniform(0, 180)), 0, 360, WATER, -1)
    roads = []
    for _ in range(rng.integers(3, 5)):
        a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        direction = (b - a) / max(np.linalg.norm(b - a), 1.0)
        a, b = a - direction * size, b + direction * size
        width = int(rng.uniform(14, 26))
        cv2.line(labels, tuple(int(v) for v in a), tuple(int(v) for v in b), ROAD, width)
        roads.append((a, b, width))
    for _ in range(rng.integers(10, 18)):
        centre = tuple(float(v) for v in rng.uniform(0, size, 2))
        dims = tuple(float(v) for v in rng.uniform(30, 70, 2))
        angle = float(rng.uniform(0, 90))
        cv2.fillPoly(labels, [_rotated_rect(centre, dims, angle)], BUILDING)
        inner = (dims[0] * 0.7, dims[1] * 0.7)
        cv2.fillPoly(labels, [_rotated_rect(centre, inner, angle)], ROOF)
    for _ in range(rng.integers(40, 70)):
        centre = tuple(int(v) for v in rng.uniform(0, size, 2))
        if labels[centre[1], centre[0]] in (BUILDING, ROOF, ROAD):
            continue
        cv2.circle(labels, centre, int(rng.uniform(7, 15)), TREE, -1)
    for a, b, _ in roads:
        for _ in range(rng.integers(3, 7)):
            point = a + rng.uniform(0.35, 0.65) * (b - a)
            angle = math.degrees(math.atan2(*(b - a)[::-1]))
            cv2.fillPoly(labels, [_rotated_rect(tuple(point), (16.0, 8.0), angle)], VEHICLE)
    for _ in range(rng.integers(10, 20)):
        centre = tuple(int(v) for v in rng.uniform(0, size, 2))
        cv2.circle(labels, centre, 3, PERSON, -1)
    textures = _textures(size)
    image = np.zeros((size, size, 3), np.float32)
    shift = rng.integers(0, size, 2)
    for cls, colour in _BASE_COLOURS.items():
        mask = labels == cls
        texture = np.roll(textures[cls], tuple(int(v) for v in shift), (0, 1))[mask]
        gain = 1.0 - _CONTRAST[cls] / 2 + _CONTRAST[cls] * texture
        image[mask] = np.asarray(colour, np.float32) * gain[:, None]
    light = cv2.GaussianBlur(rng.normal(0, 1, (size // 32, size // 32)).astype(np.float32), (0, 0), 1.5)
    light = cv2.resize(light, (size, size), interpolation=cv2.INTER_CUBIC)
    image *= (1.0 + 0.12 * light / max(float(np.abs(light).max()), 1e-6))[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _camera(centre: np.ndarray, angle: float, scale: float, size: tuple[int, int]) -> np.ndarray:
    """Frame pixel -> scene pixel (``3×3``): q = centre + scale * R(angle) (p - frame centre)."""
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    half = np.array([(size[1] - 1) / 2, (size[0] - 1) / 2])
    linear = np.array([[cos, -sin], [sin, cos]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = centre - linear @ half
    return matrix


class SyntheticClips(ClipSource):
    """Generated clips (UAVid classes) with the :class:`ClipSource` interface and known homographies."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        self.info = UAVID
        self.clips = [f"{i}_synthetic_{self.config.seed}" for i in range(self.config.num_clips)]
        rng = np.random.default_rng(self.config.seed)
        self._frames: dict[str, list[np.ndarray]] = {}
        self._labels: dict[str, list[np.ndarray]] = {}
        self._homos: dict[str, list[np.ndarray]] = {}
        for clip in self.clips:
            self._generate(clip, rng)

    def _generate(self, clip: str, rng: np.random.Generator) -> None:
        cfg = self.config
        scene, scene_labels = _scene(rng, cfg.scene_size)
        heading = rng.uniform(0, 2 * math.pi)
        velocity = cfg.speed * np.array([math.cos(heading), math.sin(heading)])
        start = cfg.scene_size / 2 - velocity * cfg.frames_per_clip / 2
        angle0, turn = rng.uniform(-math.pi, math.pi), cfg.rotation * rng.choice([-1.0, 1.0])
        scale = rng.uniform(0.9, 1.2)
        frames, labels, homos, last_camera = [], [], [], None
        for t in range(cfg.frames_per_clip):
            camera = _camera(start + velocity * t, angle0 + turn * t, scale, cfg.size)
            dsize = (cfg.size[1], cfg.size[0])
            flags = cv2.WARP_INVERSE_MAP
            image = cv2.warpPerspective(scene, camera, dsize, flags=flags | cv2.INTER_LINEAR).astype(np.float32)
            image = image * (1.0 + rng.uniform(-cfg.flicker, cfg.flicker)) + rng.normal(0, cfg.noise, image.shape)
            frames.append(np.clip(image, 0, 255).astype(np.uint8))
            labels.append(cv2.warpPerspective(scene_labels, camera, dsize, flags=flags | cv2.INTER_NEAREST))
            homos.append(np.eye(3) if last_camera is None else np.linalg.inv(camera) @ last_camera)
            last_camera = camera
        self._frames[clip], self._labels[clip], self._homos[clip] = frames, labels, homos

    def frame_names(self, clip: str) -> list[str]:
        return [f"{i:06d}" for i in range(1, self.config.frames_per_clip + 1)]

    def read_frame(self, clip: str, index: int) -> np.ndarray:
        return self._frames[clip][index]

    def labelled(self, clip: str) -> list[int]:
        every = self.config.label_every
        return [i for i in range(self.config.frames_per_clip) if (i + 1) % every == 0]

    def read_label(self, clip: str, index: int) -> np.ndarray:
        return self._labels[clip][index]

    def full_label(self, clip: str, index: int) -> np.ndarray:
        """The label of any frame (labelled or not): the demo's dense ground truth."""
        return self._labels[clip][index]

    def homography(self, clip: str, index: int) -> np.ndarray | None:
        return None if index == 0 else self._homos[clip][index]


def write_synthetic_dataset(root: str | Path, splits: dict[str, SyntheticConfig]) -> Path:
    """Write generated clips in the prepared on-disk layout (``data/<clip>/origin|mask``, ``<split>.txt``).

    Masks hold raw values (train id + 1) on the labelled frames only. Clip names include the seed, so give each
    split its own seed. Returns ``root``.
    """
    root = Path(root)
    for split, config in splits.items():
        source = SyntheticClips(config)
        for clip in source.clips:
            labelled = set(source.labelled(clip))
            for index, name in enumerate(source.frame_names(clip)):
                write_image(root / "data" / clip / "origin" / f"{name}.png", source.read_frame(clip, index))
                if index in labelled:
                    write_image(root / "data" / clip / "mask" / f"{name}.png", source.read_label(clip, index) + 1)
        (root / f"{split}.txt").write_text("".join(f"{clip}\n" for clip in source.clips))
    return root
