"""MegaDepth in the layout glue-factory (LightGlue's training code) reads, for stage-2 training.

On-disk layout under the dataset root (names are glue-factory's defaults, configurable in :class:`MegaDepthConfig`)::

    ROOT/Undistorted_SfM/<scene>/images/<name>.jpg       undistorted photos
    ROOT/depth_undistorted/<scene>/<stem>.h5             depth maps: HDF5 dataset "depth", float H×W, 0 = unknown
    ROOT/scene_info/<scene>.npz                          per scene: image_paths, depth_paths (object arrays of
                                                         root-relative paths or None), intrinsics N×3×3,
                                                         poses N×4×4 (world-to-camera), overlap_matrix N×N
    ROOT/train_scenes_clean.txt, valid_scenes_clean.txt  split lists: one scene id per line

Pairs are sampled per scene from the overlap matrix within ``[min_overlap, max_overlap]``, equally from
``num_overlap_bins`` bins (glue-factory's sampling), seeded. Images are read grey, resized so that the long side is
``resize`` and padded to a ``resize×resize`` square (``square_pad``); depth maps follow with nearest-neighbour
resizing and zero (= unknown) padding; intrinsics are scaled by the actual per-axis factors.
``semaglue prepare-megadepth`` writes ``scene_info/<scene>.npz`` from a COLMAP text model (the preparation step
behind these files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class MegaDepthConfig:
    """glue-factory's ``data`` keys for MegaDepth (paper stage 2: 1024 px, overlap 0.1-0.7 in 3 bins)."""

    image_subpath: str = "Undistorted_SfM"
    depth_subpath: str = "depth_undistorted"
    info_dir: str = "scene_info"
    train_split: str = "train_scenes_clean.txt"
    val_split: str = "valid_scenes_clean.txt"
    train_num_per_scene: int = 300
    val_num_per_scene: int = 10
    min_overlap: float = 0.1
    max_overlap: float = 0.7
    num_overlap_bins: int = 3
    resize: int = 1024
    square_pad: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_overlap <= self.max_overlap <= 1.0:
            raise ValueError(
                f"megadepth overlap range must satisfy 0 <= min <= max <= 1, got {self.min_overlap}, {self.max_overlap}"
            )
        if self.resize < 8 or self.num_overlap_bins < 1:
            raise ValueError("megadepth.resize must be >= 8 and megadepth.num_overlap_bins >= 1")


def read_split(path: Path) -> list[str]:
    """Scene ids of a split list (one per line; blank lines and ``#`` comments skipped)."""
    if not path.is_file():
        raise FileNotFoundError(f"MegaDepth split list not found: {path}")
    scenes = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    scenes = [s for s in scenes if s]
    if not scenes:
        raise ValueError(f"{path}: lists no scene")
    return scenes


def load_scene_info(path: Path) -> dict[str, np.ndarray]:
    """A ``scene_info/<scene>.npz`` (object arrays of paths need ``allow_pickle``: open only trusted files),
    validated: matching lengths, 3×3 intrinsics, 4×4 poses, square overlap matrix."""
    if not path.is_file():
        raise FileNotFoundError(f"MegaDepth scene info not found: {path}")
    keys = ("image_paths", "depth_paths", "intrinsics", "poses", "overlap_matrix")
    try:
        with np.load(path, allow_pickle=True) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise ValueError(f"{path}: missing key {missing[0]!r}")
            info = {k: npz[k] for k in keys}
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable scene-info .npz ({exc})") from exc
    n = len(info["image_paths"])
    shapes = {
        "depth_paths": (n,),
        "intrinsics": (n, 3, 3),
        "poses": (n, 4, 4),
        "overlap_matrix": (n, n),
    }
    for key, shape in shapes.items():
        if tuple(np.shape(info[key])) != shape:
            raise ValueError(f"{path}: {key} has shape {np.shape(info[key])}, expected {shape}")
    return info


def read_depth(path: Path) -> np.ndarray:
    """An HDF5 depth map (dataset ``depth``) -> ``H×W`` float32 metres-up-to-scale, 0 = unknown."""
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"depth map not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            depth = np.asarray(f["depth"], dtype=np.float32)
    except KeyError as exc:
        raise ValueError(f"{path}: no 'depth' dataset") from exc
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 depth map ({exc})") from exc
    if depth.ndim != 2 or not np.isfinite(depth).all() or (depth < 0).any():
        raise ValueError(f"{path}: depth must be a finite, non-negative H×W map (shape {depth.shape})")
    return depth


def read_gray(path: Path) -> np.ndarray:
    """A photo as grey float32 ``H×W`` in [0, 1]."""
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image.astype(np.float32) / 255.0


def resize_pad(
    image: np.ndarray, depth: np.ndarray, K: np.ndarray, size: int, square_pad: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long side -> ``size`` (image: area/linear, depth: nearest), K scaled per axis, then zero padding to
    ``size×size`` at the bottom/right when ``square_pad``."""
    h, w = image.shape
    scale = size / max(h, w)
    nw, nh = max(round(w * scale), 1), max(round(h * scale), 1)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(image, (nw, nh), interpolation=interp)
    depth = cv2.resize(depth, (nw, nh), interpolation=cv2.INTER_NEAREST)
    K = np.diag([nw / w, nh / h, 1.0]) @ K
    if square_pad:
        image = np.pad(image, ((0, size - nh), (0, size - nw)))
        depth = np.pad(depth, ((0, size - nh), (0, size - nw)))
    return image, depth, K


class MegaDepthPairs(Dataset):
    """Pairs of the scenes in a split. Items: ``image0/1`` ``1×S×S`` in [0, 1], ``depth0/1`` ``S×S``,
    ``K0/1`` 3×3, ``T_0to1``/``T_1to0`` 4×4 (camera-0 -> camera-1 coordinates), ``overlap`` (float)."""

    def __init__(self, root: str | Path, config: MegaDepthConfig, split: str = "train") -> None:
        self.root, self.config = Path(root), config
        if not self.root.is_dir():
            raise FileNotFoundError(f"MegaDepth root not found: {self.root}")
        split_file = config.train_split if split == "train" else config.val_split
        per_scene = config.train_num_per_scene if split == "train" else config.val_num_per_scene
        rng = np.random.default_rng(config.seed + (0 if split == "train" else 1))
        self.infos: dict[str, dict[str, np.ndarray]] = {}
        self.items: list[tuple[str, int, int, float]] = []
        for scene in read_split(self.root / split_file):
            info = load_scene_info(self.root / config.info_dir / f"{scene}.npz")
            self.infos[scene] = info
            for i, j in self._sample(info, per_scene, rng):
                self.items.append((scene, i, j, float(info["overlap_matrix"][i, j])))
        if not self.items:
            raise ValueError(
                f"{self.root / split_file}: no pair with overlap in [{config.min_overlap}, {config.max_overlap}]"
            )

    def _sample(self, info: dict[str, np.ndarray], count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        cfg = self.config
        valid = np.array([p is not None for p in info["image_paths"]]) & np.array(
            [p is not None for p in info["depth_paths"]]
        )
        overlap = np.asarray(info["overlap_matrix"], dtype=np.float64)
        ok = np.triu(valid[:, None] & valid[None], 1) & (overlap >= cfg.min_overlap) & (overlap <= cfg.max_overlap)
        i, j = np.nonzero(ok)
        if len(i) == 0:
            return []
        edges = np.linspace(cfg.min_overlap, cfg.max_overlap, cfg.num_overlap_bins + 1)
        bins = np.clip(np.searchsorted(edges, overlap[i, j], side="right") - 1, 0, cfg.num_overlap_bins - 1)
        chosen: list[int] = []
        for b in range(cfg.num_overlap_bins):
            members = np.nonzero(bins == b)[0]
            take = min(len(members), count // cfg.num_overlap_bins + (b < count % cfg.num_overlap_bins))
            chosen.extend(rng.choice(members, take, replace=False).tolist())
        return [(int(i[k]), int(j[k])) for k in sorted(chosen)]

    def __len__(self) -> int:
        return len(self.items)

    def _depth_path(self, scene: str, index: int) -> Path:
        stored = self.root / str(self.infos[scene]["depth_paths"][index])
        if stored.is_file():
            return stored
        stem = Path(str(self.infos[scene]["image_paths"][index])).stem
        return self.root / self.config.depth_subpath / scene / f"{stem}.h5"

    def _view(self, scene: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        info = self.infos[scene]
        image_path = self.root / str(info["image_paths"][index])
        depth_path = self._depth_path(scene, index)
        image, depth = read_gray(image_path), read_depth(depth_path)
        if image.shape != depth.shape:
            raise ValueError(f"{depth_path}: depth is {depth.shape[::-1]} but {image_path} is {image.shape[::-1]}")
        K = np.asarray(info["intrinsics"][index], dtype=np.float64)
        return resize_pad(image, depth, K, self.config.resize, self.config.square_pad)

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene, i, j, overlap = self.items[index]
        poses = self.infos[scene]["poses"]
        image0, depth0, K0 = self._view(scene, i)
        image1, depth1, K1 = self._view(scene, j)
        T_0to1 = np.asarray(poses[j], np.float64) @ np.linalg.inv(np.asarray(poses[i], np.float64))
        return {
            "image0": torch.from_numpy(image0)[None],
            "image1": torch.from_numpy(image1)[None],
            "depth0": torch.from_numpy(depth0),
            "depth1": torch.from_numpy(depth1),
            "K0": torch.from_numpy(K0).float(),
            "K1": torch.from_numpy(K1).float(),
            "T_0to1": torch.from_numpy(T_0to1).float(),
            "T_1to0": torch.from_numpy(np.linalg.inv(T_0to1)).float(),
            "overlap": overlap,
        }


def _quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def read_colmap_cameras(path: Path) -> dict[int, np.ndarray]:
    """COLMAP ``cameras.txt`` -> ``{camera_id: K 3×3}`` (PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV:
    the undistorted models keep only the pinhole part)."""
    cameras = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            cam_id, model, params = int(fields[0]), fields[1], [float(v) for v in fields[4:]]
            if model in ("PINHOLE", "OPENCV"):
                fx, fy, cx, cy = params[:4]
            elif model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
                fx = fy = params[0]
                cx, cy = params[1:3]
            else:
                raise ValueError(f"camera model {model} not supported")
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}:{number}: bad camera line ({exc})") from exc
        cameras[cam_id] = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return cameras


def read_colmap_images(path: Path) -> list[tuple[str, int, np.ndarray, set[int]]]:
    """COLMAP ``images.txt`` -> ``[(name, camera_id, pose 4×4 world-to-camera, observed 3-D point ids)]``."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    images = []
    for k in range(0, len(lines) - 1, 2):
        head, points = lines[k].split(), lines[k + 1].split()
        try:
            q, t = np.array(head[1:5], np.float64), np.array(head[5:8], np.float64)
            cam_id, name = int(head[8]), head[9]
            ids = {int(v) for v in points[2::3] if int(v) >= 0}
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}: bad image entry {' '.join(head[:1])!r} ({exc})") from exc
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = _quaternion_to_rotation(q), t
        images.append((name, cam_id, pose, ids))
    if not images:
        raise ValueError(f"{path}: lists no image")
    return images


def prepare_scene_info(root: str | Path, scene: str, config: MegaDepthConfig, sparse_subdir: str = "sparse") -> Path:
    """Write ``ROOT/<info_dir>/<scene>.npz`` from the COLMAP text model ``ROOT/<image_subpath>/<scene>/<sparse_subdir>``
    (``cameras.txt``, ``images.txt``). Overlap of two images = shared 3-D points / the larger of the two point
    counts (symmetric). Images whose depth map ``ROOT/<depth_subpath>/<scene>/<stem>.h5`` is missing get a ``None``
    depth path (never sampled). Returns the written path (an existing file is never overwritten)."""
    root = Path(root)
    model = root / config.image_subpath / scene / sparse_subdir
    for name in ("cameras.txt", "images.txt"):
        if not (model / name).is_file():
            raise FileNotFoundError(f"COLMAP text model file not found: {model / name}")
    out = root / config.info_dir / f"{scene}.npz"
    if out.exists():
        raise ValueError(f"{out} exists; remove it first (prepare-megadepth never overwrites)")
    cameras = read_colmap_cameras(model / "cameras.txt")
    images = read_colmap_images(model / "images.txt")
    image_paths, depth_paths, intrinsics, poses = [], [], [], []
    for name, cam_id, pose, _ in images:
        if cam_id not in cameras:
            raise ValueError(f"{model / 'images.txt'}: image {name} uses unknown camera {cam_id}")
        image_rel = Path(config.image_subpath) / scene / "images" / name
        depth_rel = Path(config.depth_subpath) / scene / f"{Path(name).stem}.h5"
        image_paths.append(str(image_rel) if (root / image_rel).is_file() else None)
        depth_paths.append(str(depth_rel) if (root / depth_rel).is_file() else None)
        intrinsics.append(cameras[cam_id])
        poses.append(pose)
    n = len(images)
    overlap = np.zeros((n, n))
    for a in range(n):
        for b in range(a + 1, n):
            shared = len(images[a][3] & images[b][3])
            largest = max(len(images[a][3]), len(images[b][3]), 1)
            overlap[a, b] = overlap[b, a] = shared / largest
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(
        tmp,
        image_paths=np.array(image_paths, dtype=object),
        depth_paths=np.array(depth_paths, dtype=object),
        intrinsics=np.stack(intrinsics),
        poses=np.stack(poses),
        overlap_matrix=overlap,
    )
    tmp.replace(out)
    return out
