"""Synthetic driving sequences with exact depth, camera motion and Cityscapes labels (tests and the demo).

A pinhole camera 1.6 m above a ground plane drives forward along a street: road and sidewalks on the ground, a
building façade on each side, poles along the kerbs and parked or driving cars (boxes). Every pixel is ray-cast
against these surfaces, so depth (metres, 0 = sky), labels (Cityscapes trainIds: road 0, sidewalk 1, building 2,
pole 5, sky 10, car 13) and the relative camera poses are exact. Surfaces are textured in world coordinates with
photos shipped by scikit-image, so a frame really is a re-projection of its neighbours and view-synthesis training
works on it. Frames are rendered at 2× and box-filtered (anti-aliasing). Everything is seeded and deterministic.

Camera convention: x right, y down, z forward. ``K`` is the 4×4 pixel intrinsics of the KITTI-like normalised
matrix (fx = 0.58·W, fy = 1.92·H, cx = 0.5·W, cy = 0.5·H); ``pose(f)`` = cam_T_cam(0, f) maps points of the
current camera into camera f (the convention of the model's ``('cam_T_cam', 0, f)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from sgdepth_pkd.data.common import AugmentConfig, depth_sample, segmentation_sample

__all__ = [
    "CAMERA_HEIGHT",
    "KITTI_NORMALISED_K",
    "SyntheticConfig",
    "SyntheticDrivingDataset",
    "SyntheticSequence",
    "generate_sequence",
    "intrinsics",
    "item_rng",
]

CAMERA_HEIGHT = 1.6
KITTI_NORMALISED_K = np.array(
    [[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32
)  # fmt: skip
ROAD, SIDEWALK, BUILDING, POLE, SKY, CAR = 0, 1, 2, 5, 10, 13


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and content of the generated sequences.

    ``height``/``width`` (multiples of 32), ``frames`` per sequence, ``speed`` range (metres per frame), ``max_yaw``
    (radians per frame), ``cars`` and ``poles`` per side, ``texture_scale`` (texture pixels per metre).
    """

    height: int = 96
    width: int = 320
    frames: int = 8
    speed: tuple[float, float] = (0.8, 1.4)
    max_yaw: float = 0.01
    cars: int = 3
    poles: int = 3
    texture_scale: float = 48.0

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32 or self.height % 32 or self.width % 32:
            raise ValueError(f"height/width: must be positive multiples of 32, got {self.height}x{self.width}")
        if self.frames < 3:
            raise ValueError(f"frames: need at least 3 frames per sequence, got {self.frames}")
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ValueError(f"speed: need 0 < min <= max, got {self.speed}")


@dataclass(frozen=True)
class SyntheticSequence:
    """One rendered sequence: ``images`` N×H×W×3 uint8, ``depths`` N×H×W float32 (metres, 0 = sky),
    ``labels`` N×H×W uint8 (trainIds), ``poses`` N×4×4 camera-to-world, ``K`` 4×4 float32."""

    images: np.ndarray
    depths: np.ndarray
    labels: np.ndarray
    poses: np.ndarray
    K: np.ndarray

    def relative_pose(self, index: int, offset: int) -> np.ndarray:
        """cam_T_cam(0, offset) for frame ``index``: points of camera ``index`` → camera ``index + offset``."""
        return (np.linalg.inv(self.poses[index + offset]) @ self.poses[index]).astype(np.float32)


def intrinsics(height: int, width: int) -> np.ndarray:
    """4×4 pixel intrinsics of the KITTI-like normalised matrix at ``height``×``width``."""
    K = KITTI_NORMALISED_K.copy()
    K[0] *= width
    K[1] *= height
    return K


@lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
    """Float32 RGB textures from scikit-image's photos (grey photos tinted), lightly blurred against aliasing."""
    import cv2
    from skimage import data

    def rgb(image: np.ndarray, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        image = image.astype(np.float32) / 255.0
        if image.ndim == 2:
            image = image[..., None] * np.array(tint, dtype=np.float32)
        return cv2.GaussianBlur(np.ascontiguousarray(image[..., :3]), (3, 3), 0.8)

    return {
        "road": rgb(data.gravel(), (0.55, 0.55, 0.6)),
        "sidewalk": rgb(data.brick(), (0.85, 0.75, 0.7)),
        "facade_0": rgb(data.rocket()),
        "facade_1": rgb(data.coffee()),
        "facade_2": rgb(data.astronaut()),
        "facade_3": rgb(data.immunohistochemistry()),
        "car_0": rgb(data.chelsea()),
        "car_1": rgb(data.cat()),
        "car_2": rgb(data.coffee()[::-1]),
        "pole": rgb(data.grass(), (0.6, 0.6, 0.65)),
    }


def _sample(texture: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Nearest texel of a tiled texture at world coordinates (u, v) in metres → N×3."""
    rows = np.floor(v * scale).astype(np.int64) % texture.shape[0]
    cols = np.floor(u * scale).astype(np.int64) % texture.shape[1]
    return texture[rows, cols]


def _scene(rng: np.random.Generator, config: SyntheticConfig, length: float) -> dict:
    """Random street layout up to z = ``length`` (a façade closes the street): façades, kerbs, poles and car boxes
    (min/max corners)."""
    road_half = rng.uniform(3.0, 4.5)
    walls = (-(road_half + rng.uniform(2.0, 4.0)), road_half + rng.uniform(2.0, 4.0))
    wall_height = rng.uniform(8.0, 16.0)
    boxes: list[tuple[np.ndarray, np.ndarray, int, str]] = []
    for side in (-1, 1):
        kerb = side * (road_half + 0.6)
        for z in rng.uniform(2.0, length, size=config.poles):
            lo = np.array([kerb - 0.12, CAMERA_HEIGHT - rng.uniform(4.0, 6.0), z - 0.12])
            boxes.append((lo, np.array([kerb + 0.12, CAMERA_HEIGHT, z + 0.12]), POLE, "pole"))
    for index in range(config.cars):
        lane = rng.choice((-1.0, 1.0)) * rng.uniform(1.6, road_half - 1.0)
        z = rng.uniform(5.0, length)
        size = np.array([rng.uniform(1.6, 2.0), rng.uniform(1.3, 1.7), rng.uniform(3.8, 4.6)])
        lo = np.array([lane - size[0] / 2, CAMERA_HEIGHT - size[1], z])
        boxes.append((lo, lo + size, CAR, f"car_{index % 3}"))
    facades = (f"facade_{rng.integers(4)}", f"facade_{rng.integers(4)}")
    return {
        "road_half": road_half,
        "walls": walls,
        "end": length,
        "wall_height": wall_height,
        "boxes": boxes,
        "facades": facades,
    }


def _render(
    scene: dict, pose: np.ndarray, K: np.ndarray, height: int, width: int, config: SyntheticConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast one frame at height×width: (RGB H×W×3 float32, depth H×W float32, labels H×W uint8)."""
    textures = _textures()
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_cam = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rays = rays_cam.reshape(-1, 3) @ pose[:3, :3].T  # world directions whose camera z-component is 1
    origin = pose[:3, 3]
    count = rays.shape[0]
    depth = np.full(count, np.inf)
    label = np.full(count, SKY, dtype=np.uint8)
    surface = np.full(count, -1, dtype=np.int64)  # −1 sky, 0 ground, 1/2 walls, 3+ boxes

    with np.errstate(divide="ignore", invalid="ignore"):
        t = (CAMERA_HEIGHT - origin[1]) / rays[:, 1]
        hit = (t > 0) & (t < depth)
        depth[hit], surface[hit] = t[hit], 0
        for index, wall_x in enumerate(scene["walls"]):
            t = (wall_x - origin[0]) / rays[:, 0]
            y = origin[1] + t * rays[:, 1]
            hit = (t > 0) & (t < depth) & (y > CAMERA_HEIGHT - scene["wall_height"])
            depth[hit], surface[hit] = t[hit], 1 + index
        t = (scene["end"] - origin[2]) / rays[:, 2]
        y = origin[1] + t * rays[:, 1]
        hit = (t > 0) & (t < depth) & (y > CAMERA_HEIGHT - scene["wall_height"])
        depth[hit], surface[hit] = t[hit], 1
        inverse = 1.0 / rays
        for index, (lo, hi, _, _) in enumerate(scene["boxes"]):
            t0, t1 = (lo - origin) * inverse, (hi - origin) * inverse
            low, high = np.fmin(t0, t1), np.fmax(t0, t1)
            near = np.fmax(np.fmax(low[:, 0], low[:, 1]), low[:, 2])
            far = np.fmin(np.fmin(high[:, 0], high[:, 1]), high[:, 2])
            hit = (near <= far) & (near > 0) & (near < depth)
            depth[hit], surface[hit] = near[hit], 3 + index

    points = origin + depth[:, None] * rays
    color = np.zeros((count, 3), dtype=np.float32)
    scale = config.texture_scale
    sky = surface < 0
    elevation = np.clip(-rays_cam.reshape(-1, 3)[:, 1], 0, 1)
    color[sky] = np.array([0.55, 0.7, 0.95], dtype=np.float32) * (0.8 + 0.2 * elevation[sky, None])
    ground = surface == 0
    on_road = ground & (np.abs(points[:, 0]) < scene["road_half"])
    on_walk = ground & ~on_road
    label[on_road], label[on_walk] = ROAD, SIDEWALK
    color[on_road] = _sample(textures["road"], points[on_road, 0], points[on_road, 2], scale)
    color[on_walk] = _sample(textures["sidewalk"], points[on_walk, 0], points[on_walk, 2], scale)
    for index in range(2):
        wall = surface == 1 + index  # the closing façade (surface 1) is textured along x
        label[wall] = BUILDING
        texture = textures[scene["facades"][index]]
        color[wall] = _sample(texture, points[wall, 2] + points[wall, 0], points[wall, 1], scale / 2)
    for index, (lo, hi, box_label, name) in enumerate(scene["boxes"]):
        box = surface == 3 + index
        if not box.any():
            continue
        label[box] = box_label
        p = points[box]
        # face coordinates: the two axes along which the hit point is not on a face of the box
        on_side = np.minimum(np.abs(p[:, 0] - lo[0]), np.abs(p[:, 0] - hi[0])) < 1e-6
        uu = np.where(on_side, p[:, 2], p[:, 0] + p[:, 2])
        color[box] = _sample(textures[name], uu, p[:, 1], scale)
    metric = np.where(sky, 0.0, depth).astype(np.float32)
    return color.reshape(height, width, 3), metric.reshape(height, width), label.reshape(height, width)


def _trajectory(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """N×4×4 camera-to-world poses: forward motion with a small random yaw drift."""
    speed = rng.uniform(*config.speed)
    yaw_rate = rng.uniform(-config.max_yaw, config.max_yaw)
    poses, position, yaw = [], np.zeros(3), 0.0
    for _ in range(config.frames):
        c, s = np.cos(yaw), np.sin(yaw)
        pose = np.eye(4)
        pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        pose[:3, 3] = position
        poses.append(pose)
        position = position + speed * np.array([s, 0.0, c])
        yaw += yaw_rate
    return np.stack(poses)


@lru_cache(maxsize=256)
def generate_sequence(seed: int, config: SyntheticConfig | None = None) -> SyntheticSequence:
    """Render one seeded sequence (cached; treat the arrays as read-only) (2× supersampled, box-filtered; depth and labels at the top-left subsample)."""
    config = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    poses = _trajectory(rng, config)
    scene = _scene(rng, config, length=float(poses[-1, 2, 3]) + 40.0)
    K = intrinsics(config.height, config.width)
    K2 = intrinsics(2 * config.height, 2 * config.width)
    images, depths, labels = [], [], []
    for pose in poses:
        color, depth, label = _render(scene, pose, K2, 2 * config.height, 2 * config.width, config)
        color = color.reshape(config.height, 2, config.width, 2, 3).mean(axis=(1, 3))
        images.append(np.clip(np.round(color * 255), 0, 255).astype(np.uint8))
        depths.append(depth[::2, ::2])
        labels.append(label[::2, ::2])
    return SyntheticSequence(np.stack(images), np.stack(depths), np.stack(labels), poses, K)


def item_rng(augment: AugmentConfig | None) -> np.random.Generator | None:
    """Augmentation generator seeded from torch's RNG (restored on ``--resume``, seeded per DataLoader worker)."""
    return None if augment is None else np.random.default_rng(int(torch.randint(2**31 - 1, ()).item()))


class SyntheticDrivingDataset(Dataset):
    """``num_sequences`` rendered sequences (seeds ``seed``, ``seed + 1``, …) as depth or segmentation samples.

    ``purpose="depth"``: one sample per frame with both neighbours — frames (−1, 0, +1), K, ground-truth depth,
    labels and poses (:func:`sgdepth_pkd.data.common.depth_sample`). ``purpose="segmentation"``: one sample per
    frame (image + trainIds, the Cityscapes role; with ``augment`` the spec's rescale-and-crop from a 1.5× resize).
    """

    def __init__(
        self,
        num_sequences: int,
        config: SyntheticConfig | None = None,
        seed: int = 0,
        purpose: str = "depth",
        augment: AugmentConfig | None = None,
    ) -> None:
        if purpose not in ("depth", "segmentation"):
            raise ValueError(f"purpose: expected 'depth' or 'segmentation', got {purpose!r}")
        if num_sequences < 1:
            raise ValueError(f"num_sequences: must be >= 1, got {num_sequences}")
        self.config = config or SyntheticConfig()
        self.purpose, self.augment = purpose, augment
        self.sequences = [generate_sequence(seed + i, self.config) for i in range(num_sequences)]
        first = 1 if purpose == "depth" else 0
        last = self.config.frames - 1 if purpose == "depth" else self.config.frames
        self.index = [(s, f) for s in range(num_sequences) for f in range(first, last)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict:
        seq_index, frame = self.index[item]
        seq = self.sequences[seq_index]
        size = (self.config.height, self.config.width)
        rng = item_rng(self.augment)
        name = f"synthetic_{seq_index:03d}_{frame:03d}"
        if self.purpose == "segmentation":
            resize = (int(size[0] * 1.5), int(size[1] * 1.5))
            return segmentation_sample(seq.images[frame], seq.labels[frame], size, rng, self.augment, resize, name=name)
        frames = {f: seq.images[frame + f] for f in (-1, 0, 1)}
        poses = {f: seq.relative_pose(frame, f) for f in (-1, 1)}
        return depth_sample(
            frames, seq.K, size, K_normalised=False, rng=rng, augment=self.augment,
            depth=seq.depths[frame], labels=seq.labels[frame], poses=poses, name=name,
        )  # fmt: skip
