"""Inference helpers: image pair → model input, model output → maps (as the authors' test.py derives them)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from clearscd.model.clearscd import ClearSCD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "images_to_input", "predict_maps", "read_rgb"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB; a clear error names the file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def images_to_input(image_A: np.ndarray, image_B: np.ndarray) -> torch.Tensor:
    """Two H×W×3 uint8 RGB images (T1, T2) → 1×6×H×W float tensor, each ImageNet-normalised ((u8/255 − mean)/std).

    H and W must be equal for both images and multiples of 32.
    """
    for name, image in (("image_A", image_A), ("image_B", image_B)):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} must be H×W×3 RGB, got shape {image.shape}")
    if image_A.shape != image_B.shape:
        raise ValueError(f"image_A {image_A.shape} and image_B {image_B.shape} must have the same size")
    if image_A.shape[0] % 32 or image_A.shape[1] % 32:
        raise ValueError(f"image height and width must be multiples of 32, got {image_A.shape[:2]}")
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    pair = [(image.astype(np.float32) / 255.0 - mean) / std for image in (image_A, image_B)]
    return torch.from_numpy(np.concatenate(pair, axis=2)).permute(2, 0, 1).unsqueeze(0).contiguous()


@torch.no_grad()
def predict_maps(model: ClearSCD, imgs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run the model in inference mode: ``sem_A``/``sem_B`` = argmax classes B×H×W, ``change`` = round(sigmoid(BCD))
    B×H×W (0/1), plus the raw logits ``seg_A``, ``seg_B``, ``BCD``."""
    out = model(imgs, test=True)
    return {
        "sem_A": out["seg_A"].argmax(1),
        "sem_B": out["seg_B"].argmax(1),
        "change": torch.sigmoid(out["BCD"][:, 0]).round().long(),
        "seg_A": out["seg_A"],
        "seg_B": out["seg_B"],
        "BCD": out["BCD"],
    }
