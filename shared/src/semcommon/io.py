"""Reading and writing images, PFM files and disparity/depth maps.

Every reader raises :class:`ImageReadError` naming the file when it is missing, truncated, undecodable, or of an
unexpected dtype or shape. Colour images are returned as RGB, ``H×W×3``; single-band images as ``H×W``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "ImageReadError",
    "read_depth",
    "read_disparity",
    "read_image",
    "read_pfm",
    "read_video_frames",
    "write_depth",
    "write_disparity",
    "write_image",
    "write_pfm",
]

_TIFF = {".tif", ".tiff"}


class ImageReadError(ValueError):
    """A file could not be read as the expected image."""


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty")
    return path


def _check(array: np.ndarray, path: Path, dtype: Any, channels: int | None) -> np.ndarray:
    if dtype is not None:
        allowed = tuple(np.dtype(d) for d in (dtype if isinstance(dtype, (list, tuple)) else [dtype]))
        if array.dtype not in allowed:
            raise ImageReadError(f"{path}: dtype {array.dtype}, expected {' or '.join(str(d) for d in allowed)}")
    if channels is not None:
        have = 1 if array.ndim == 2 else array.shape[-1]
        if have != channels:
            raise ImageReadError(f"{path}: {have} channel(s), expected {channels}")
    return array


def read_image(path: str | Path, dtype: Any = None, channels: int | None = None) -> np.ndarray:
    """Read PNG/JPEG (8 or 16 bit) or TIFF (any dtype, single- or multi-band) without changing its values.

    Returns ``H×W`` for single-band images, ``H×W×C`` otherwise (RGB order for 3/4-channel PNG/JPEG).
    ``dtype`` (one or several) and ``channels`` are checked when given.
    """
    path = _existing(path)
    if path.suffix.lower() in _TIFF:
        import tifffile

        try:
            array = tifffile.imread(str(path))
        except Exception as exc:
            raise ImageReadError(f"{path}: unreadable TIFF ({exc})") from exc
        if array.ndim == 3 and array.shape[0] < min(array.shape[1:]) and array.shape[0] <= 16:
            array = np.moveaxis(array, 0, -1)  # planar (bands first) -> H×W×C
    else:
        buffer = np.fromfile(str(path), dtype=np.uint8)
        array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ImageReadError(f"{path}: cannot be decoded as an image (truncated or not an image file)")
        if array.ndim == 3 and array.shape[2] == 3:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
        elif array.ndim == 3 and array.shape[2] == 4:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return _check(array, path, dtype, channels)


def write_image(path: str | Path, array: np.ndarray) -> Path:
    """Write ``H×W`` or ``H×W×C`` (RGB) as PNG/JPEG (uint8/uint16) or TIFF (any dtype); parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    if path.suffix.lower() in _TIFF:
        import tifffile

        tifffile.imwrite(str(path), array)
        return path
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: PNG/JPEG need uint8 or uint16 data, got {array.dtype} (use .tif or .pfm)")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(path.suffix, array)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode this image as {path.suffix}")
    encoded.tofile(str(path))
    return path


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (``PF`` colour or ``Pf`` grey) as float32, top row first."""
    path = _existing(path)
    with path.open("rb") as handle:
        header = handle.readline().strip()
        if header not in (b"PF", b"Pf"):
            raise ImageReadError(f"{path}: not a PFM file (header {header[:8]!r})")
        dims = re.match(rb"^\s*(\d+)\s+(\d+)\s*$", handle.readline())
        if dims is None:
            raise ImageReadError(f"{path}: malformed PFM size line")
        width, height = int(dims.group(1)), int(dims.group(2))
        try:
            scale = float(handle.readline().strip())
        except ValueError as exc:
            raise ImageReadError(f"{path}: malformed PFM scale line") from exc
        channels = 3 if header == b"PF" else 1
        data = np.frombuffer(handle.read(), dtype="<f4" if scale < 0 else ">f4")
    if data.size != width * height * channels:
        raise ImageReadError(f"{path}: truncated PFM ({data.size} values, expected {width * height * channels})")
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def write_pfm(path: str | Path, array: np.ndarray) -> Path:
    """Write an ``H×W`` or ``H×W×3`` float array as little-endian PFM."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array, dtype="<f4")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"{path}: PFM holds H×W or H×W×3 arrays, got {array.shape}")
    header = b"PF\n" if array.ndim == 3 else b"Pf\n"
    with path.open("wb") as handle:
        handle.write(header + f"{array.shape[1]} {array.shape[0]}\n-1\n".encode())
        handle.write(np.ascontiguousarray(np.flipud(array)).tobytes())
    return path


def read_disparity(
    path: str | Path, scale: float = 1.0, invalid_value: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a single-band disparity map as float32 ``H×W`` in pixels plus its validity mask.

    Stored values are divided by ``scale`` (e.g. 256 for KITTI 16-bit PNGs); pixels equal to ``invalid_value``
    (compared before scaling) and non-finite pixels are invalid and set to 0.
    """
    path = Path(path)
    raw = read_pfm(path) if path.suffix.lower() == ".pfm" else read_image(path)
    if raw.ndim != 2:
        raise ImageReadError(f"{path}: a disparity/depth map must be single-band, got shape {raw.shape}")
    values = raw.astype(np.float32)
    valid = np.isfinite(values)
    if invalid_value is not None:
        valid &= values != invalid_value
    values = np.where(valid, values / scale, 0.0).astype(np.float32)
    return values, valid


def write_disparity(path: str | Path, values: np.ndarray, scale: float = 1.0, invalid_value: float = 0.0) -> Path:
    """Write a disparity map: 16-bit PNG (``round(values·scale)``, clipped to uint16), or float32 TIFF/PFM.

    Non-finite pixels are written as ``invalid_value``.
    """
    path = Path(path)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{path}: expected an H×W map, got {values.shape}")
    bad = ~np.isfinite(values)
    if path.suffix.lower() == ".png":
        stored = np.clip(np.round(np.where(bad, 0, values) * scale), 0, 65535).astype(np.uint16)
        stored[bad] = int(invalid_value)
        return write_image(path, stored)
    stored = np.where(bad, invalid_value, values * scale).astype(np.float32)
    return write_pfm(path, stored) if path.suffix.lower() == ".pfm" else write_image(path, stored)


read_depth = read_disparity
write_depth = write_disparity


def read_video_frames(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, H×W×3 uint8 RGB)`` per frame of a video file, decoded one at a time.

    The file is opened at the call (missing or unreadable: an error naming it now); a video without a single
    decodable frame raises ``ValueError`` naming the file once iterated.
    """
    path = _existing(path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"{path}: OpenCV cannot open this video")

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise ValueError(f"{path}: the video has no decodable frame")

    return frames()
