"""Inference on your own images: file / H×W×3 array → network input → depth, disparity, segmentation, pose.

Preprocessing follows the original evaluation (spec §d): resize to 192×640 (bilinear), scale to [0, 1], ImageNet
normalisation. Outputs are brought back to the image's own size the way the evaluation does it: the *scaled*
disparity is upsampled bilinearly and inverted to depth (§f.1), logits are upsampled nearest and arg-maxed (§f.2).
Depth is relative (monocular, up to scale): multiply by a median ratio or a known scale for metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semcommon.io import read_image
from semcommon.runtime import autocast
from sgdepth_pkd.metrics import predicted_depth, segmentation_prediction
from sgdepth_pkd.model.fast import check_impl
from sgdepth_pkd.model.sgdepth import SGDepth

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Prediction",
    "network_outputs",
    "predict_image",
    "preprocess",
    "read_rgb",
    "relative_pose",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Prediction:
    """Per-image outputs at the input image's size H×W: ``depth`` (scaled-disparity inverse, in the model's
    0.1–100 range), ``disparity`` (sigmoid output, network resolution upsampled), ``segmentation`` (int64 trainIds)."""

    depth: np.ndarray
    disparity: np.ndarray
    segmentation: np.ndarray


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit RGB image file → H×W×3 uint8 (a grey image is repeated to 3 channels, alpha dropped)."""
    image = read_image(path, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    if image.shape[2] != 3:
        raise ValueError(f"{path}: expected an RGB image, got {image.shape[2]} channels")
    return image


def preprocess(image: np.ndarray, size: tuple[int, int] = (192, 640)) -> torch.Tensor:
    """H×W×3 uint8 RGB → 1×3×h×w ImageNet-normalised float32 at ``size`` (bilinear, antialiased like PIL)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected an H×W×3 uint8 array, got {getattr(image, 'shape', type(image).__name__)}")
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"size: height and width must be multiples of 32, got {size}")
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (tensor - mean) / std


def _as_rgb(image: np.ndarray | str | Path) -> np.ndarray:
    return read_rgb(image) if isinstance(image, (str, Path)) else image


@torch.no_grad()
def network_outputs(
    model: SGDepth, images: torch.Tensor, impl: str = "fast", precision: str = "fp32", compile: bool = False
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """B×3×H×W normalised images → (float32 disparities finest first, float32 logits), in eval mode.

    ``impl``: "fast" (exact fast path, default) or "reference" (the authors' operations). ``precision`` "bf16" /
    "fp16" (autocast) and ``compile`` (``torch.compile`` of the reference operations, cached on the model) are
    approximate, opt-in modes (measured in the README's Speed section).
    """
    check_impl(impl)
    model.eval()
    with autocast(images.device, precision):
        if compile:
            disps, logits = model.compiled_predict()(images)
        else:
            disps, logits = model.predict(images, impl=impl)
    return tuple(d.float() for d in disps), logits.float()


@torch.no_grad()
def predict_image(
    model: SGDepth,
    image: np.ndarray | str | Path,
    size: tuple[int, int] | None = None,
    impl: str = "fast",
    precision: str = "fp32",
    compile: bool = False,
) -> Prediction:
    """Depth, disparity and segmentation of one image (file path or H×W×3 uint8 RGB) at the image's own size
    (``impl`` / ``precision`` / ``compile`` as :func:`network_outputs`)."""
    rgb = _as_rgb(image)
    size = size or (model.config.height, model.config.width)
    device = next(model.parameters()).device
    x = preprocess(rgb, size).to(device)
    disps, logits = network_outputs(model, x, impl, precision, compile)
    disp = disps[0]
    if not torch.isfinite(disp).all():
        raise ValueError("model produced a non-finite disparity (NaN or infinite weights?)")
    full = tuple(rgb.shape[:2])
    depth = predicted_depth(disp, full, model.config.min_depth, model.config.max_depth)
    disparity = F.interpolate(disp, size=full, mode="bilinear", align_corners=False)
    return Prediction(
        depth=depth[0, 0].cpu().numpy(),
        disparity=disparity[0, 0].cpu().numpy(),
        segmentation=segmentation_prediction(logits, full)[0].cpu().numpy(),
    )


@torch.no_grad()
def relative_pose(
    model: SGDepth, first: np.ndarray | str | Path, second: np.ndarray | str | Path, size: tuple[int, int] | None = None
) -> np.ndarray:
    """4×4 camera transform between two frames (files or arrays of the same size): the pose net on (first, second)
    without inversion, i.e. the original's ('cam_T_cam', 0, 1) when ``first`` is the current and ``second`` the next
    frame. Translation is up to the (unknown) monocular scale."""
    a, b = _as_rgb(first), _as_rgb(second)
    if a.shape != b.shape:
        raise ValueError(f"first {a.shape} and second {b.shape} must have the same size")
    size = size or (model.config.height, model.config.width)
    device = next(model.parameters()).device
    model.eval()
    pose = model.predict_pose(preprocess(a, size).to(device), preprocess(b, size).to(device), invert=False)
    return pose[0].reshape(4, 4).cpu().numpy()
