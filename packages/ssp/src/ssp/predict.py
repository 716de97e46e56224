"""Prediction on the user's files: a video, a folder of frames, one image, or one (previous, current) pair.

:class:`VideoPredictor` streams frames one by one: every frame is resized to the inference size (multiples of 32,
PIL bilinear as the authors' loaders), segmented, and — for an SSP checkpoint — fused with the previous fused output
warped by the registration homography (the recurrent propagation of ``infer_video``); logits are resized back to
the frame's own size before the argmax. Registration failures fall back to the identity and are counted.

:func:`predict_video` writes, under a new folder (built as ``<out>.partial`` and renamed at the end):
``masks/<frame>.png`` (uint8 raw masks: class id + 1, the authors' convention, lossless), ``colour/<frame>.png``
(class colours), ``overlay/<frame>.png`` (75 % colour over the frame), ``preview.mp4`` (the overlays) and
``summary.json`` (frames, frames per second, registration failures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from semcommon.checkpoint import CheckpointError
from semcommon.io import read_image, read_video_frames
from ssp.model.registration import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IdentityRegistrator,
    LearnedRegistrator,
    OpenCVRegistrator,
)
from ssp.model.ssp import SSPVideoModel

__all__ = [
    "IMAGE_SUFFIXES",
    "REGISTRATIONS",
    "VideoPredictor",
    "iter_frames",
    "load_frame",
    "logits_to_size",
    "make_registrator",
    "normalize",
    "predict_pair",
    "predict_video",
    "resize_frame",
    "save_teacher_logits",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
REGISTRATIONS = ("akaze", "sift", "orb", "identity", "disk")


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
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """Segment ``path`` with SSP, propagating from ``last_path`` (previous frame of the same size).

    Both frames are resized to the inference ``size`` (multiples of 32); the fused logits are resized back to the
    input's size before the argmax. ``registrator``: an :class:`OpenCVRegistrator` (default: SIFT), or any module
    mapping (last_frames, frames) -> ``B×3×3``. Returns ``pred`` ``H×W`` and ``logits`` ``n×H×W`` at the input size,
    ``homography`` ``3×3`` (previous -> current pixels, at the inference size). ``precision`` bf16/fp16: the
    network under autocast (approximate); the implementation is the model's (:func:`ssp.model.set_impl`).
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
    from semcommon.runtime import autocast

    device = next(model.parameters()).device
    with autocast(device, precision):
        _, logits = model.infer_video(torch.cat([last_frame, frame]).to(device), homos=homography.to(device))
    logits = logits_to_size(logits[1:].float(), original.shape[:2])[0]
    return {"pred": logits.argmax(dim=0), "logits": logits, "homography": homography[0]}


def make_registrator(name: str, model: nn.Module, weights: str | Path | None = None) -> nn.Module:
    """``akaze`` | ``sift`` | ``orb`` (OpenCV), ``identity``, or ``disk`` (DISK + LightGlue: the checkpoint's
    ``registrator.*`` weights, or ``weights``, a file with ``disk.*`` / ``lg_matcher.*`` keys)."""
    if name not in REGISTRATIONS:
        raise ValueError(f"--registration: expected one of {', '.join(REGISTRATIONS)}, got {name!r}")
    if name == "identity":
        return IdentityRegistrator()
    if name != "disk":
        return OpenCVRegistrator(name)
    if weights is not None:
        from semcommon.checkpoint import load_state_dict_into
        from ssp.checkpoint import read_state_dict

        registrator = LearnedRegistrator()
        state = read_state_dict(weights)
        if any(k.startswith("registrator.") for k in state):
            state = {k[len("registrator.") :]: v for k, v in state.items() if k.startswith("registrator.")}
        load_state_dict_into(registrator, state, strict=True, source=str(weights))
        return registrator.to(next(model.parameters()).device).eval()
    registrator = getattr(model, "registrator", None)
    if not isinstance(registrator, LearnedRegistrator):
        raise ValueError(
            "--registration disk: the checkpoint holds no DISK/LightGlue weights; pass --registration-weights"
        )
    return registrator


class VideoPredictor:
    """Frame-by-frame segmentation with an SSP video model (recurrent fusion) or an image model (per frame).

    ``impl`` "fast" (default): the model's exact fast path (:func:`ssp.model.set_impl`) and every frame described
    once for registration (OpenCV keypoints or DISK features of frame t are kept and matched again at t+1; the
    reference describes both frames of every pair, as the authors' registrator does), and LightGlue's
    cross-attention through ``scaled_dot_product_attention``. ``precision`` bf16/fp16
    runs the network under autocast (approximate).
    """

    def __init__(
        self,
        model: nn.Module,
        registrator: nn.Module | None = None,
        size: tuple[int, int] = (736, 1280),
        impl: str = "fast",
        precision: str = "fp32",
    ):
        if size[0] % 32 or size[1] % 32 or min(size) < 32:
            raise ValueError(f"--size: height and width must be positive multiples of 32, got {list(size)}")
        from ssp.model.image_model import HieraUperNet

        if not isinstance(model, (SSPVideoModel, HieraUperNet)):
            raise CheckpointError(
                f"not a segmentation checkpoint ({type(model).__name__}); expected SSP or image model"
            )
        from semcommon.runtime import autocast
        from ssp.model import set_impl

        self.model, self.size, self.impl = set_impl(model.eval(), impl), tuple(size), impl
        self.device = next(model.parameters()).device
        self.autocast = lambda: autocast(self.device, precision)
        self.registrator = registrator if registrator is not None else OpenCVRegistrator("akaze")
        set_impl(self.registrator, impl)
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_described: object | None = None
        self.last_image: np.ndarray | None = None
        self.last_frame: torch.Tensor | None = None
        self.registered = 0

    @property
    def failures(self) -> int:
        """Frames whose registration failed (identity used instead)."""
        return int(getattr(self.registrator, "failures", 0))

    def _describe(self, image: np.ndarray, frame: torch.Tensor) -> object | None:
        """The registration features of a frame (fast path), None where the registrator has none."""
        if self.impl == "reference" or not isinstance(self.model, SSPVideoModel):
            return None
        if isinstance(self.registrator, OpenCVRegistrator):
            return self.registrator.describe(image)
        if isinstance(self.registrator, LearnedRegistrator):
            return self.registrator.describe(frame)[0]
        return None

    def _homography(self, image: np.ndarray, frame: torch.Tensor, described: object | None) -> torch.Tensor:
        if described is not None and self.last_described is not None:
            if isinstance(self.registrator, OpenCVRegistrator):
                return torch.from_numpy(self.registrator.match(self.last_described, described)).float()[None]
            return self.registrator.match(self.last_described, described, tuple(frame.shape[-2:])).float().cpu()[None]
        if isinstance(self.registrator, OpenCVRegistrator):
            return torch.from_numpy(self.registrator.estimate(self.last_image, image)).float()[None]
        return self.registrator(self.last_frame, frame).float().cpu()

    @torch.no_grad()
    def step(self, image: np.ndarray) -> torch.Tensor:
        """uint8 RGB ``H×W×3`` -> fused logits ``n×H×W`` at the frame's own size."""
        resized = resize_frame(image, self.size)
        frame = normalize(resized).to(self.device)
        described = self._describe(resized, frame)
        video = isinstance(self.model, SSPVideoModel)
        homography = None
        if video and self.state is not None:
            homography = self._homography(resized, frame, described).to(self.device)
            self.registered += 1
        with self.autocast():
            if video:
                logits, self.state = self.model.propagate(frame, self.state, homography)
            else:
                logits = self.model(frame)
        self.last_image, self.last_frame, self.last_described = resized, frame, described
        return logits_to_size(logits.float(), image.shape[:2])[0]


def iter_frames(source: str | Path) -> tuple[list[str] | None, object]:
    """(frame names or None for a video, an iterator of (name, uint8 RGB frame)) for a video file, a folder of
    images (sorted by name; all of one size) or one image."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ValueError(f"{source}: no image files ({', '.join(IMAGE_SUFFIXES)})")

        def folder():
            first = None
            for path in paths:
                image = read_image(path, dtype=np.uint8, channels=3)
                first = image.shape if first is None else first
                if image.shape != first:
                    raise ValueError(f"{path}: {image.shape[1]}x{image.shape[0]} differs from the first frame "
                                     f"({first[1]}x{first[0]}); frames of one video must have one size")  # fmt: skip
                yield path.stem, image

        return [p.stem for p in paths], folder()
    if not source.is_file():
        raise FileNotFoundError(f"input not found: {source}")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return [source.stem], iter([(source.stem, read_image(source, dtype=np.uint8, channels=3))])
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{source}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image or a folder of images")
    frames = read_video_frames(source)
    return None, ((f"{index:06d}", frame) for index, frame in frames)


def _preview_frame(image: np.ndarray, max_width: int = 640) -> np.ndarray:
    import cv2

    if image.shape[1] <= max_width:
        return image
    height = round(image.shape[0] * max_width / image.shape[1]) // 2 * 2
    return cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)


def predict_video(
    predictor: VideoPredictor,
    source: str | Path,
    out: str | Path,
    colors: np.ndarray,
    preview: bool = True,
    fps: float = 10.0,
    show_progress: bool = True,
) -> dict[str, object]:
    """Segment every frame of ``source`` into the new folder ``out`` (layout in the module docstring)."""
    import json
    import shutil
    import time

    import cv2

    from semcommon.io import write_image
    from semcommon.runtime import progress
    from semcommon.viz import label_to_rgb, overlay

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder (choose a new one)")
    names, frames = iter_frames(source)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    writer, count, seconds = None, 0, 0.0
    try:
        for name, image in progress(frames, desc="ssp predict", total=len(names) if names else None,
                                    enabled=show_progress):  # fmt: skip
            start = time.perf_counter()
            pred = predictor.step(image).argmax(0).cpu().numpy()
            seconds += time.perf_counter() - start
            colour = label_to_rgb(pred, colors)
            blended = overlay(image, colour, alpha=0.75)
            write_image(partial / "masks" / f"{name}.png", (pred + 1).astype(np.uint8))
            write_image(partial / "colour" / f"{name}.png", colour)
            write_image(partial / "overlay" / f"{name}.png", blended)
            if preview:
                small = _preview_frame(blended)
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                    writer = cv2.VideoWriter(
                        str(partial / "preview.mp4"), fourcc, fps, (small.shape[1], small.shape[0])
                    )
                writer.write(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
            count += 1
    except BaseException:
        if writer is not None:
            writer.release()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if writer is not None:
        writer.release()
    summary = {
        "frames": count,
        "fps": round(count / seconds, 3) if seconds else None,
        "registration_failures": predictor.failures,
        "registered_pairs": predictor.registered,
        "size": list(predictor.size),
    }
    (partial / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return summary


@torch.no_grad()
def save_teacher_logits(model: nn.Module, source: object, out: str | Path, size: tuple[int, int]) -> int:
    """Teacher logits for every frame of every clip of ``source`` (a :class:`~ssp.data.ClipSource`):
    ``<out>/<clip>/<frame>.npz`` (``np.savez_compressed``, ``arr_0`` float32 ``C×H×W`` at the teacher input
    ``size``, the logits upsampled as the image model's forward does). Written under ``<out>.partial`` and renamed
    at the end; an existing non-empty ``out`` is refused. Returns the number of files."""
    import shutil

    from semcommon.runtime import progress
    from ssp.model.image_model import HieraUperNet

    if not isinstance(model, HieraUperNet):
        raise CheckpointError(f"save-logits needs an image-model (teacher) checkpoint, got {type(model).__name__}")
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"--size: height and width must be multiples of 32, got {list(size)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder (choose a new one)")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    device, count = next(model.parameters()).device, 0
    try:
        for clip in progress(source.clips, desc="ssp save-logits"):
            for index, name in enumerate(source.frame_names(clip)):
                frame = normalize(resize_frame(source.read_frame(clip, index), size)).to(device)
                logits = model.eval()(frame)[0].float().cpu().numpy()
                (partial / clip).mkdir(parents=True, exist_ok=True)
                np.savez_compressed(partial / clip / f"{name}.npz", logits)
                count += 1
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return count
