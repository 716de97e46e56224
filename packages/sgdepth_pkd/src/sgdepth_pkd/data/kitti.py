"""KITTI raw in its download layout, the Eigen/Zhou split lists, and velodyne ground truth (spec §e, §f.1).

Layout read (the archives of ``kitti_archives_to_download.txt`` unzipped into one root)::

    ROOT/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    ROOT/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame:010d>.png    (left colour; image_03 = right)
    ROOT/<date>/<date>_drive_<nnnn>_sync/velodyne_points/data/<frame:010d>.bin   (N×4 float32: x, y, z, reflectance)

Split lines (both formats of the published lists are accepted, one item per line, ``#`` comments skipped):

* ``<date>/<drive>_sync <frame> <l|r>`` (Zhou / Eigen-Zhou train, validation and test lists);
* ``<date>/<drive>_sync/image_0{2,3}/data/<frame>.png`` (Eigen's test file list; further columns ignored).

Ground truth depth is projected from the velodyne scan exactly as the standard ``export_gt_depth`` does
(:func:`velodyne_depth_map`), or read from a precomputed ``gt_depths.npz`` (key ``data``, one map per split line).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from sgdepth_pkd.data.common import AugmentConfig, depth_sample
from sgdepth_pkd.data.synthetic import KITTI_NORMALISED_K, item_rng
from sgdepth_pkd.inference import read_rgb

__all__ = [
    "KittiItem",
    "KittiRawDataset",
    "export_gt_depths",
    "extract_archives",
    "load_gt_depths",
    "read_calib",
    "read_split",
    "read_velodyne",
    "velodyne_depth_map",
]

_CAMERA = {"l": 2, "r": 3}
_IMAGE_LINE = re.compile(r"^(?P<folder>.+)/image_0(?P<cam>[23])/data/(?P<frame>\d+)\.(png|jpg)$")


@dataclass(frozen=True)
class KittiItem:
    """One split entry: drive folder (``<date>/<drive>_sync``), frame index, camera (2 = left, 3 = right)."""

    folder: str
    frame: int
    camera: int

    @property
    def date(self) -> str:
        return self.folder.split("/")[0]

    def image_path(self, root: Path, offset: int = 0) -> Path:
        return root / self.folder / f"image_0{self.camera}" / "data" / f"{self.frame + offset:010d}.png"

    def velodyne_path(self, root: Path) -> Path:
        return root / self.folder / "velodyne_points" / "data" / f"{self.frame:010d}.bin"


def read_split(path: str | Path) -> list[KittiItem]:
    """Parse a split list (formats in the module docstring); a malformed line raises naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    items = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        match = _IMAGE_LINE.match(parts[0])
        if match:
            items.append(KittiItem(match["folder"], int(match["frame"]), int(match["cam"])))
        elif len(parts) in (2, 3) and parts[1].isdigit() and (len(parts) == 2 or parts[2] in _CAMERA):
            items.append(KittiItem(parts[0].rstrip("/"), int(parts[1]), _CAMERA[parts[2] if len(parts) == 3 else "l"]))
        else:
            raise ValueError(f"{path}:{number}: cannot parse split line {raw!r} (expected '<folder> <frame> <l|r>')")
    if not items:
        raise ValueError(f"{path}: split file has no entries")
    return items


def read_calib(path: str | Path) -> dict[str, np.ndarray]:
    """A KITTI calibration text file (``key: numbers``) → key → float64 array (non-numeric entries skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: calibration file not found")
    values = {}
    for line in path.read_text().splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue
    return values


def read_velodyne(path: str | Path) -> np.ndarray:
    """Velodyne scan ``.bin`` → N×4 float32 (x, y, z, reflectance)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: velodyne scan not found")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size == 0 or raw.size % 4:
        raise ValueError(f"{path}: not a velodyne scan (size {raw.size * 4} bytes is not a positive multiple of 16)")
    points = raw.reshape(-1, 4)
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: velodyne scan contains NaN or infinite values")
    return points


def _calib_entry(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib or calib[key].size != size:
        raise ValueError(f"{path}: missing or malformed calibration entry {key!r}")
    return calib[key]


def velodyne_depth_map(calib_dir: str | Path, velodyne_path: str | Path, camera: int = 2) -> np.ndarray:
    """Project a velodyne scan into rectified camera ``camera`` → H×W float32 depth (metres, 0 = no point).

    P = P_rect_0c · R_rect_00 · [R|T]_velo→cam; points behind the sensor (x < 0) dropped; pixel = round(u/w) − 1,
    round(v/w) − 1; depth = the point's forward distance x; where several points land on a pixel the nearest wins.
    The image size is ``S_rect_0c``.
    """
    calib_dir = Path(calib_dir)
    cam_file, velo_file = calib_dir / "calib_cam_to_cam.txt", calib_dir / "calib_velo_to_cam.txt"
    cam2cam, velo2cam = read_calib(cam_file), read_calib(velo_file)
    rigid = np.eye(4)
    rigid[:3, :3] = _calib_entry(velo2cam, "R", 9, velo_file).reshape(3, 3)
    rigid[:3, 3] = _calib_entry(velo2cam, "T", 3, velo_file)
    rect = np.eye(4)
    rect[:3, :3] = _calib_entry(cam2cam, "R_rect_00", 9, cam_file).reshape(3, 3)
    projection = _calib_entry(cam2cam, f"P_rect_0{camera}", 12, cam_file).reshape(3, 4)
    width, height = _calib_entry(cam2cam, f"S_rect_0{camera}", 2, cam_file).astype(np.int64)

    points = read_velodyne(velodyne_path).astype(np.float64)
    points = points[points[:, 0] >= 0]
    points[:, 3] = 1.0
    image = (projection @ rect @ rigid @ points.T).T
    image[:, :2] /= image[:, 2:3]
    cols = np.round(image[:, 0]).astype(np.int64) - 1
    rows = np.round(image[:, 1]).astype(np.int64) - 1
    keep = (cols >= 0) & (rows >= 0) & (cols < width) & (rows < height)
    depth = np.full((height, width), np.inf)
    np.minimum.at(depth, (rows[keep], cols[keep]), points[keep, 0])
    depth[~np.isfinite(depth) | (depth < 0)] = 0
    return depth.astype(np.float32)


def export_gt_depths(root: str | Path, items: list[KittiItem], out: str | Path) -> Path:
    """Project the velodyne ground truth of every split item and save ``gt_depths.npz`` (key ``data``, object
    array in split order), written to a temporary name first."""
    root, out = Path(root), Path(out)
    maps = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        maps[index] = velodyne_depth_map(root / item.date, item.velodyne_path(root), item.camera)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, data=maps)
    tmp.replace(out)
    return out


def load_gt_depths(path: str | Path, count: int) -> list[np.ndarray]:
    """``gt_depths.npz`` → list of H×W float32 maps; the number must match the split (``count``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ground-truth file not found")
    try:
        with np.load(path, allow_pickle=True) as archive:
            data = archive["data"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a gt_depths.npz with a 'data' entry ({exc})") from exc
    maps = [np.asarray(m, dtype=np.float32) for m in data]
    if len(maps) != count:
        raise ValueError(f"{path}: holds {len(maps)} depth maps, the split has {count} lines")
    for index, depth in enumerate(maps):
        if depth.ndim != 2 or not np.isfinite(depth).all():
            raise ValueError(f"{path}: entry {index} is not a finite H×W depth map")
    return maps


def extract_archives(archive_dir: str | Path, names: list[str], root: str | Path) -> list[str]:
    """Unzip the listed archives (file names or URLs, as in ``kitti_archives_to_download.txt``) found in
    ``archive_dir`` into ``root``; returns the names not found. Nothing is downloaded."""
    archive_dir, root = Path(archive_dir), Path(root)
    missing = []
    for name in names:
        path = archive_dir / name.rstrip("/").rsplit("/", 1)[-1]
        if not path.is_file():
            missing.append(path.name)
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(root)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a zip archive ({exc})") from exc
    return missing


class KittiRawDataset(Dataset):
    """Depth samples of a KITTI raw split: frames ``offsets`` around each listed frame, resized to ``size``.

    Intrinsics come from the drive's ``calib_cam_to_cam.txt`` (``P_rect_0c``, normalised by ``S_rect_0c``) when
    present, else the standard normalised KITTI matrix. ``gt`` = ``"velodyne"`` projects the scan, a path reads a
    ``gt_depths.npz``, None gives no ground truth. Missing frames, unreadable or non-RGB images and frames of
    different sizes raise naming the file.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Path,
        size: tuple[int, int] = (192, 640),
        offsets: tuple[int, ...] = (0, -1, 1),
        gt: str | Path | None = None,
        augment: AugmentConfig | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: KITTI root folder not found")
        self.items = read_split(split)
        self.size, self.offsets, self.augment = size, offsets, augment
        self.gt_maps = None
        if gt is not None and str(gt) != "velodyne":
            self.gt_maps = load_gt_depths(gt, len(self.items))
        self.velodyne = gt is not None and str(gt) == "velodyne"

    def __len__(self) -> int:
        return len(self.items)

    def _K(self, item: KittiItem) -> np.ndarray:
        calib = self.root / item.date / "calib_cam_to_cam.txt"
        if not calib.is_file():
            return KITTI_NORMALISED_K
        values = read_calib(calib)
        P = _calib_entry(values, f"P_rect_0{item.camera}", 12, calib).reshape(3, 4)
        width, height = _calib_entry(values, f"S_rect_0{item.camera}", 2, calib)
        K = np.eye(4, dtype=np.float32)
        K[:3, :3] = P[:, :3]
        K[0] /= width
        K[1] /= height
        return K

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        frames = {}
        for offset in self.offsets:
            path = item.image_path(self.root, offset)
            frames[offset] = read_rgb(path)
            if frames[offset].shape != frames[self.offsets[0]].shape:
                raise ValueError(f"{path}: size {frames[offset].shape[:2]} differs from the other frames")
        depth = None
        if self.gt_maps is not None:
            depth = self.gt_maps[index]
        elif self.velodyne:
            depth = velodyne_depth_map(self.root / item.date, item.velodyne_path(self.root), item.camera)
        name = f"{item.folder}/{item.camera}/{item.frame:010d}"
        return depth_sample(
            frames, self._K(item), self.size, K_normalised=True, rng=item_rng(self.augment), augment=self.augment,
            depth=depth, name=name,
        )  # fmt: skip
