"""Inference helpers on image files: load and normalise frames, register and segment a frame pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from semcommon.io import read_image
from ssp.model.registration import IMAGENET_MEAN, IMAGENET_STD, OpenCVRegistrator
from ssp.model.ssp import SSPVideoModel

__all__ = ["load_frame", "normalize", "predict_pair"]


def normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB ``H×W×3`` -> ImageNet-normalised ``1×3×H×W`` float32."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((tensor - mean) / std)[None]


def load_frame(path: str | Path, size: tuple[int, int] = (736, 1280)) -> tuple[np.ndarray, torch.Tensor]:
    """Read an RGB frame, resize it to ``size`` (H, W) with PIL bilinear as the original loaders do.

    Returns (uint8 ``H×W×3``, normalised ``1×3×H×W``).
    """
    image = read_image(path, dtype=np.uint8, channels=3)
    resized = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
    return resized, normalize(resized)


def predict_pair(
    model: SSPVideoModel,
    last_path: str | Path,
    path: str | Path,
    registrator: nn.Module | None = None,
    size: tuple[int, int] = (736, 1280),
) -> dict[str, torch.Tensor]:
    """Segment ``path`` with SSP, propagating from ``last_path`` (previous frame).

    ``registrator``: an :class:`OpenCVRegistrator` (default: SIFT, the CPU path available in every OpenCV build),
    or any module mapping (last_frames, frames) -> ``B×3×3``. Returns ``pred`` ``H×W``, ``logits`` ``n×H×W`` (fused),
    ``homography`` ``3×3`` (previous -> current pixels).
    """
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"size: height and width must be multiples of 32, got {size}")
    last_image, last_frame = load_frame(last_path, size)
    image, frame = load_frame(path, size)
    registrator = registrator if registrator is not None else OpenCVRegistrator("sift")
    if isinstance(registrator, OpenCVRegistrator):
        homography = torch.from_numpy(registrator.estimate(last_image, image)).float()[None]
    else:
        homography = registrator(last_frame, frame).float()
    device = next(model.parameters()).device
    preds, logits = model.infer_video(torch.cat([last_frame, frame]).to(device), homos=homography.to(device))
    return {"pred": preds[1], "logits": logits[1], "homography": homography[0]}
