"""Sample assembly and augmentation shared by the datasets (spec §d), in the original key layout.

A depth sample holds ``('color', f, 0)`` (3×H×W in [0, 1]) and ``('color_aug', f, 0)`` (colour-jittered, ImageNet
normalised) for every frame offset f, ``'K'`` / ``'inv_K'`` (4×4 pixel intrinsics at H×W) and, when known,
``('depth', 0, 0)`` (1×H'×W' metres, 0 = invalid; at the ground truth's own size), ``('segmentation', 0, 0)``
(1×H×W int64 trainIds, 255 = ignore) and ``('pose_gt', f)`` (4×4, cam_T_cam(0, f)). ``'name'`` identifies the item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from sgdepth_pkd.inference import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IGNORE_LABEL", "AugmentConfig", "color_jitter", "depth_sample", "normalise", "segmentation_sample"]

IGNORE_LABEL = 255


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (spec §d): horizontal flip probability, colour-jitter probability (depth data; the
    segmentation data always jitters) and ranges (brightness/contrast/saturation U[1−b, 1+b], hue U[−h, h])."""

    flip: float = 0.5
    jitter: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1


def _tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


def normalise(image: torch.Tensor) -> torch.Tensor:
    """3×H×W in [0, 1] → ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image - mean) / std


def color_jitter(images: list[torch.Tensor], config: AugmentConfig, rng: np.random.Generator) -> list[torch.Tensor]:
    """One random brightness → contrast → saturation → hue jitter (in that order) applied to every frame."""
    b = rng.uniform(1 - config.brightness, 1 + config.brightness)
    c = rng.uniform(1 - config.contrast, 1 + config.contrast)
    s = rng.uniform(1 - config.saturation, 1 + config.saturation)
    h = rng.uniform(-config.hue, config.hue)
    out = []
    for image in images:
        image = TF.adjust_brightness(image, b)
        image = TF.adjust_contrast(image, c)
        image = TF.adjust_saturation(image, s)
        out.append(TF.adjust_hue(image, h))
    return out


def _pixel_K(K: np.ndarray, size: tuple[int, int], normalised: bool) -> torch.Tensor:
    K = np.array(K, dtype=np.float32)
    if normalised:
        K[0] *= size[1]
        K[1] *= size[0]
    return torch.from_numpy(K)


def depth_sample(
    frames: Mapping[int, np.ndarray],
    K: np.ndarray,
    size: tuple[int, int],
    K_normalised: bool,
    rng: np.random.Generator | None = None,
    augment: AugmentConfig | None = None,
    depth: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    poses: Mapping[int, np.ndarray] | None = None,
    name: str = "",
) -> dict:
    """Frames (offset → H×W×3 uint8) → a depth sample at ``size`` (H, W).

    ``K``: 4×4 intrinsics, normalised by the image size when ``K_normalised`` else in pixels of the given frames.
    With ``augment`` (and ``rng``): horizontal flip (all frames, labels, depth, and the ground-truth poses mirrored)
    and colour jitter on the ``color_aug`` copies only.
    """
    height, width = frames[0].shape[:2]
    if not K_normalised:
        K = np.array(K, dtype=np.float32)
        K[0] /= width
        K[1] /= height
    colors = {f: _resize(_tensor(image), size) for f, image in frames.items()}
    flip = augment is not None and rng is not None and rng.uniform() < augment.flip
    jitter = augment is not None and rng is not None and rng.uniform() < augment.jitter
    offsets = sorted(colors)
    if flip:
        colors = {f: image.flip(-1) for f, image in colors.items()}
    augmented = [colors[f] for f in offsets]
    if jitter:
        augmented = color_jitter(augmented, augment, rng)
    K_pixels = _pixel_K(K, size, normalised=True)
    if flip:
        K_pixels[0, 2] = size[1] - K_pixels[0, 2]
    sample: dict = {"name": name, "K": K_pixels, "inv_K": torch.linalg.inv(K_pixels)}
    for f, aug in zip(offsets, augmented, strict=True):
        sample["color", f, 0] = colors[f]
        sample["color_aug", f, 0] = normalise(aug)
    if depth is not None:
        gt = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        sample["depth", 0, 0] = gt.flip(-1) if flip else gt
    if labels is not None:
        sample["segmentation", 0, 0] = _labels(labels, size, flip)
    if poses is not None:
        mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
        for f, pose in poses.items():
            pose = torch.from_numpy(np.asarray(pose, dtype=np.float32))
            sample["pose_gt", f] = mirror @ pose @ mirror if flip else pose
    return sample


def _labels(labels: np.ndarray, size: tuple[int, int], flip: bool) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))[None, None].float()
    tensor = F.interpolate(tensor, size=size, mode="nearest")[0].long()
    return tensor.flip(-1) if flip else tensor


def segmentation_sample(
    image: np.ndarray,
    labels: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator | None = None,
    augment: AugmentConfig | None = None,
    resize: tuple[int, int] | None = None,
    max_rescale: float = 1.5,
    name: str = "",
) -> dict:
    """Image H×W×3 uint8 + trainIds H×W → a segmentation sample of ``size``.

    Without ``augment``: image and labels resized to ``size`` (bilinear / nearest). With it (spec §d): flip, resize
    to ``resize`` (default ``size``), random rescale by s ~ U(1, ``max_rescale``) to ⌊H/s⌋×⌊W/s⌋, random crop of
    ``size`` (zero / ignore padding when smaller), colour jitter always.
    """
    if augment is None or rng is None:
        return {
            "name": name,
            ("color", 0, 0): (color := _resize(_tensor(image), size)),
            ("color_aug", 0, 0): normalise(color),
            ("segmentation", 0, 0): _labels(labels, size, False),
        }
    flip = rng.uniform() < augment.flip
    base = resize or size
    scale = rng.uniform(1.0, max_rescale)
    scaled = (int(base[0] / scale), int(base[1] / scale))
    color = _resize(_tensor(image), scaled)
    label = _labels(labels, scaled, False)
    pad_h, pad_w = max(0, size[0] - scaled[0]), max(0, size[1] - scaled[1])
    if pad_h or pad_w:
        color = F.pad(color, (0, pad_w, 0, pad_h))
        label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_LABEL)
    top = int(rng.integers(0, color.shape[1] - size[0] + 1))
    left = int(rng.integers(0, color.shape[2] - size[1] + 1))
    color = color[:, top : top + size[0], left : left + size[1]]
    label = label[:, top : top + size[0], left : left + size[1]]
    if flip:
        color, label = color.flip(-1), label.flip(-1)
    (jittered,) = color_jitter([color], augment, rng)
    return {
        "name": name,
        ("color", 0, 0): color,
        ("color_aug", 0, 0): normalise(jittered),
        ("segmentation", 0, 0): label,
    }
