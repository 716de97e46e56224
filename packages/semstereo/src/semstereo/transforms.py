"""Image -> model input: explicit dtype/range conversion, ImageNet normalisation (as the original loaders) and
padding to a multiple of 32; reading a left/right pair of files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semcommon.io import ImageReadError, read_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Full-scale value of each accepted integer image dtype.
INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_unit_range(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``H×W×3`` uint8 (÷255), uint16 (÷65535) or float in [0, 1] (unchanged) -> float32 in [0, 1].

    Any other dtype, non-finite values or floats outside [0, 1] raise ``ValueError`` naming ``name``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an H×W×3 RGB image, got shape {image.shape}")
    if image.dtype in INTEGER_RANGES:
        return image.astype(np.float32) / INTEGER_RANGES[image.dtype]
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{name}: unsupported dtype {image.dtype} (use uint8, uint16 or float in [0, 1])")
    if not np.isfinite(image).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name}: float image values must lie in [0, 1], got [{low:g}, {high:g}]")
    return image.astype(np.float32)


def to_tensor(image: np.ndarray, name: str = "image") -> torch.Tensor:
    """RGB ``H×W×3`` (uint8, uint16 or float in [0, 1]) -> ImageNet-normalised float32 ``1×3×H×W``."""
    x = torch.from_numpy(np.ascontiguousarray(to_unit_range(image, name))).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def pad_to_multiple(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad ``B×C×H×W`` at the bottom/right to multiples of ``multiple``; returns ``(padded, (H, W))``.

    Crop model outputs back with ``out[..., :H, :W]``. (US3D/WHU tiles need no padding.)
    """
    height, width = x.shape[-2:]
    return F.pad(x, (0, (-width) % multiple, 0, (-height) % multiple)), (height, width)


def read_rgb(path: str | Path) -> np.ndarray:
    """An RGB image file as ``H×W×3`` (uint8/uint16/float as stored); RGBA loses its alpha and a grey image is
    replicated to 3 channels (as PIL ``convert("RGB")`` in the original loaders); other channel counts are errors."""
    image = read_image(path)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise ImageReadError(f"{path}: {channels} channel(s), expected an RGB image")
    return image


def read_pair(left: str | Path, right: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a left/right pair; different sizes raise one line naming both files and their own sizes."""
    left_image, right_image = read_rgb(left), read_rgb(right)
    if left_image.shape != right_image.shape:
        raise ImageReadError(
            f"{right}: size {right_image.shape[1]}x{right_image.shape[0]} does not match the left image "
            f"{left} ({left_image.shape[1]}x{left_image.shape[0]})"
        )
    return left_image, right_image
