"""Image -> model input: ImageNet normalisation (as the original loaders) and padding to a multiple of 32."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """8-bit RGB ``H×W×3`` -> ImageNet-normalised float ``1×3×H×W``."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"to_tensor: expected an H×W×3 RGB image, got shape {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def pad_to_multiple(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad ``B×C×H×W`` at the bottom/right to multiples of ``multiple``; returns ``(padded, (H, W))``.

    Crop model outputs back with ``out[..., :H, :W]``. (US3D/WHU tiles need no padding.)
    """
    height, width = x.shape[-2:]
    return F.pad(x, (0, (-width) % multiple, 0, (-height) % multiple)), (height, width)
