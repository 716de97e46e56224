"""Inference helpers on image files: load and normalise frames, register and segment a frame pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from semcommon.io import read_image
from ssp.model.registration import IMAGENET_MEAN, IMAGENET_STD, OpenCVRegistrator
from ssp.model.ssp import SSPVideoModel

__all__ = ["load_frame", "logits_to_size", "normalize", "predict_pair", "resize_frame"]


def normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB ``H×W×3`` -> ImageNet-normalised ``1×3×H×W`` float32."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((tensor - mean) / std)[None]


def resize_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 RGB ``H×W×3`` resized to ``size`` (H, W) with PIL bilinear, as the original loaders do."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def load_frame(path: str | Path, size: tuple[int, int] = (736, 1280)) -> tuple[np.ndarray, torch.Tensor]:
    """Read an RGB frame and resize it to ``size`` (H, W). Returns (uint8 ``H×W×3``, normalised ``1×3×H×W``)."""
    resized = resize_frame(read_image(path, dtype=np.uint8, channels=3), size)
    return resized, normalize(resized)


def logits_to_size(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``B×n×h×w`` logits resized bilinearly to ``size`` (the input image's), unchanged if already that size."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def predict_pair(
    model: SSPVideoModel,
    last_path: str | Path,
    path: str | Path,
    registrator: nn.Module | None = None,
    size: tuple[int, int] = (736, 1280),
) -> dict[str, torch.Tensor]:
    """Segment ``path`` with SSP, propagating from ``last_path`` (previous frame of the same size).

    Both frames are resized to the inference ``size`` (multiples of 32); the fused logits are resized back to the
    input's size before the argmax. ``registrator``: an :class:`OpenCVRegistrator` (default: SIFT), or any module
    mapping (last_frames, frames) -> ``B×3×3``. Returns ``pred`` ``H×W`` and ``logits`` ``n×H×W`` at the input size,
    ``homography`` ``3×3`` (previous -> current pixels, at the inference size).
    """
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"size: height and width must be multiples of 32, got {size}")
    last_original = read_image(last_path, dtype=np.uint8, channels=3)
    original = read_image(path, dtype=np.uint8, channels=3)
    if last_original.shape != original.shape:
        raise ValueError(
            f"{last_path} ({last_original.shape[1]}x{last_original.shape[0]}) and {path} "
            f"({original.shape[1]}x{original.shape[0]}): frames of one video must have the same size"
        )
    last_image, image = resize_frame(last_original, size), resize_frame(original, size)
    last_frame, frame = normalize(last_image), normalize(image)
    registrator = registrator if registrator is not None else OpenCVRegistrator("sift")
    if isinstance(registrator, OpenCVRegistrator):
        homography = torch.from_numpy(registrator.estimate(last_image, image)).float()[None]
    else:
        homography = registrator(last_frame, frame).float()
    device = next(model.parameters()).device
    _, logits = model.infer_video(torch.cat([last_frame, frame]).to(device), homos=homography.to(device))
    logits = logits_to_size(logits[1:], original.shape[:2])[0]
    return {"pred": logits.argmax(dim=0), "logits": logits, "homography": homography[0]}
