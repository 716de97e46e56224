"""Resizing, augmentation and normalisation of frames, labels and teacher logits (spec section d).

Randomness comes from ``torch``'s global generator, so a resumed run (the frame restores the RNG) draws the same
augmentations. A pixel-coordinate affine ``A`` is tracked through every geometric step so that a known homography
between two frames of a sample stays valid: ``H' = A H A^-1``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ssp.data.tables import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "VideoSample",
    "augment_image",
    "augment_video",
    "load_teacher_logits",
    "normalize_frames",
]

SCALES = tuple(1.1 + 0.05 * i for i in range(7))


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _chance(p: float) -> bool:
    return float(torch.rand(())) < p


def _randint(high: int) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, ()))


class VideoSample:
    """Frames (uint8 ``H×W×3`` each), an optional label (uint8 train ids ``H×W``), optional teacher logits
    (float32 ``C×H×W`` per frame) and the pixel affine applied so far (``3×3``)."""

    def __init__(
        self, frames: list[np.ndarray], label: np.ndarray | None = None, logits: list[torch.Tensor] | None = None
    ) -> None:
        self.frames, self.label, self.logits = frames, label, logits
        self.affine = np.eye(3)

    def _apply(self, frame_fn, label_fn, logits_fn, affine: np.ndarray) -> None:
        self.frames = [frame_fn(f) for f in self.frames]
        self.label = None if self.label is None else label_fn(self.label)
        self.logits = None if self.logits is None else [logits_fn(x) for x in self.logits]
        self.affine = affine @ self.affine

    def transform_homography(self, homography: np.ndarray) -> np.ndarray:
        """A homography between two original frames, expressed in the transformed pixel coordinates."""
        return self.affine @ homography @ np.linalg.inv(self.affine)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].shape[0], self.frames[0].shape[1]

    def resize(self, size: tuple[int, int], nearest_logits: bool = False) -> None:
        """Frames bilinear (PIL), label nearest (PIL), logits bilinear + antialias (or nearest) to ``size`` (H, W)."""
        height, width = self.size
        if (height, width) == tuple(size):
            return
        sx, sy = size[1] / width, size[0] / height
        affine = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        pil = (size[1], size[0])

        def logits_fn(x: torch.Tensor) -> torch.Tensor:
            if nearest_logits:
                return F.interpolate(x[None], size=size, mode="nearest")[0]
            return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]

        self._apply(
            lambda f: np.asarray(Image.fromarray(f).resize(pil, Image.BILINEAR)),
            lambda m: np.asarray(Image.fromarray(m).resize(pil, Image.NEAREST)),
            logits_fn,
            affine,
        )

    def hflip(self) -> None:
        width = self.size[1]
        affine = np.array([[-1.0, 0, width - 1], [0, 1, 0], [0, 0, 1]])
        self._apply(lambda f: np.ascontiguousarray(f[:, ::-1]), lambda m: np.ascontiguousarray(m[:, ::-1]),
                    lambda x: x.flip(-1), affine)  # fmt: skip

    def crop(self, top: int, left: int, size: tuple[int, int]) -> None:
        affine = np.array([[1.0, 0, -left], [0, 1, -top], [0, 0, 1]])
        rows, cols = slice(top, top + size[0]), slice(left, left + size[1])
        self._apply(lambda f: np.ascontiguousarray(f[rows, cols]), lambda m: np.ascontiguousarray(m[rows, cols]),
                    lambda x: x[:, rows, cols], affine)  # fmt: skip

    def scale(self, factor: float) -> None:
        """OpenCV bilinear for frames, nearest for label and logits."""
        height, width = self.size
        size = (round(height * factor), round(width * factor))
        dsize = (size[1], size[0])
        sx, sy = size[1] / width, size[0] / height
        affine = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        self._apply(
            lambda f: cv2.resize(f, dsize, interpolation=cv2.INTER_LINEAR),
            lambda m: cv2.resize(m, dsize, interpolation=cv2.INTER_NEAREST),
            lambda x: F.interpolate(x[None], size=size, mode="nearest")[0],
            affine,
        )

    def photometric(self, fn) -> None:
        self.frames = [fn(f) for f in self.frames]


def _colour_jitter(frame: np.ndarray, params: dict[str, float]) -> np.ndarray:
    image = frame.astype(np.float32)
    image = (image - image.mean()) * params["contrast"] + image.mean() + params["brightness"] * 255.0
    image = np.clip(image, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(params["hue"] / 2)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + int(params["sat"]), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + int(params["val"]), 0, 255)
    image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0
    return (np.power(image, params["gamma"]) * 255.0).round().astype(np.uint8)


def augment_video(sample: VideoSample, crop_size: tuple[int, int], square_crop: bool, train: bool) -> VideoSample:
    """The video loaders' joint augmentation (same parameters for every frame, the label and the logits).

    Training: horizontal flip (0.5); with 0.75 a rescale by one of 1.1..1.4 (step 0.05) and a random crop back to
    ``crop_size``; a random ``crop_h``² crop when ``square_crop``; colour jitter (0.3): contrast 1±0.2, brightness
    ±0.2, hue ±30, saturation / value ±20, gamma 0.8-1.2. Validation: a centre square crop when ``square_crop``.
    """
    side = crop_size[0]
    if not train:
        if square_crop:
            height, width = sample.size
            sample.crop((height - side) // 2, (width - side) // 2, (side, side))
        return sample
    if _chance(0.5):
        sample.hflip()
    if _chance(0.75):
        sample.scale(SCALES[_randint(len(SCALES) - 1)])
        height, width = sample.size
        sample.crop(_randint(height - crop_size[0]), _randint(width - crop_size[1]), crop_size)
    if square_crop:
        height, width = sample.size
        sample.crop(_randint(height - side), _randint(width - side), (side, side))
    if _chance(0.3):
        params = {
            "contrast": _uniform(0.8, 1.2), "brightness": _uniform(-0.2, 0.2), "hue": _uniform(-30, 30),
            "sat": _uniform(-20, 20), "val": _uniform(-20, 20), "gamma": _uniform(0.8, 1.2),
        }  # fmt: skip
        sample.photometric(lambda f: _colour_jitter(f, params))
    return sample


def _shift_scale_rotate(sample: VideoSample) -> None:
    height, width = sample.size
    angle, scale = _uniform(-15, 15), _uniform(0.9, 1.1)
    shift = (_uniform(-0.0625, 0.0625) * width, _uniform(-0.0625, 0.0625) * height)
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    matrix[:, 2] += shift
    dsize = (width, height)
    sample.frames = [cv2.warpAffine(f, matrix, dsize, flags=cv2.INTER_LINEAR, borderValue=0) for f in sample.frames]
    if sample.label is not None:
        sample.label = cv2.warpAffine(sample.label, matrix, dsize, flags=cv2.INTER_NEAREST, borderValue=255)


def _pixel_noise(frame: np.ndarray) -> np.ndarray:
    choice = _randint(2)
    if choice == 0:
        noise = torch.randn(frame.shape).numpy() * _uniform(3.0, 9.0)
        return np.clip(frame + noise, 0, 255).astype(np.uint8)
    if choice == 1:
        quality = int(_uniform(60, 100))
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else frame
    alpha = _uniform(0.2, 0.5)
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    sharp = cv2.filter2D(frame, -1, kernel)
    return cv2.addWeighted(frame, 1 - alpha, sharp, alpha, 0)


def augment_image(sample: VideoSample, crop_size: tuple[int, int], square_crop: bool, train: bool) -> VideoSample:
    """The image model's augmentation (the authors' albumentations pipeline, re-implemented with OpenCV):
    flip 0.5; shift-scale-rotate (shift 0.0625, scale 0.1, rotate 15, zero border) 0.2; one photometric change
    (brightness/contrast, HSV, gamma) 0.8; one of noise / JPEG compression / sharpen 0.6; square crop if asked."""
    side = crop_size[0]
    if not train:
        if square_crop:
            height, width = sample.size
            sample.crop((height - side) // 2, (width - side) // 2, (side, side))
        return sample
    if _chance(0.5):
        sample.hflip()
    if _chance(0.2):
        _shift_scale_rotate(sample)
    if _chance(0.8):
        params = {"contrast": 1.0, "brightness": 0.0, "hue": 0.0, "sat": 0.0, "val": 0.0, "gamma": 1.0}
        choice = _randint(2)
        if choice == 0:
            params.update(contrast=_uniform(0.8, 1.2), brightness=_uniform(-0.2, 0.2))
        elif choice == 1:
            params.update(hue=_uniform(-20, 20), sat=_uniform(-30, 30), val=_uniform(-20, 20))
        else:
            params.update(gamma=_uniform(0.8, 1.2))
        sample.photometric(lambda f: _colour_jitter(f, params))
    if _chance(0.6):
        sample.photometric(_pixel_noise)
    if square_crop:
        height, width = sample.size
        sample.crop(_randint(height - side), _randint(width - side), (side, side))
    return sample


def normalize_frames(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 RGB frames -> ImageNet-normalised float32 ``T×3×H×W`` (max pixel value 255)."""
    stacked = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (stacked - mean) / std


def load_teacher_logits(path: str | Path, n_classes: int) -> torch.Tensor:
    """A teacher-logit file (``np.savez_compressed``, ``arr_0`` float32 ``C×H×W``), validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher logits not found: {path} (run ssp save-logits)")
    try:
        with np.load(path) as archive:
            logits = archive["arr_0"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a teacher-logit .npz with 'arr_0' ({exc})") from exc
    if logits.ndim != 3 or logits.shape[0] != n_classes or not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(f"{path}: expected float C×H×W logits with C = {n_classes}, got {logits.dtype} {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError(f"{path}: teacher logits hold NaN or Inf values")
    return torch.from_numpy(logits.astype(np.float32))
