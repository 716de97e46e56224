"""Pluggable frozen teachers for patch knowledge distillation (spec §c.8 steps 3-4).

A teacher maps an N×3×h×w stack of ImageNet-normalised patches to an N×1×h×w (or N×h×w) disparity / inverse-depth
stack. Teachers are frozen: they run under ``torch.no_grad`` in eval mode with ``requires_grad`` switched off, so no
gradient ever reaches them, and their outputs are returned detached.

* :class:`SelfTeacher` — a trained copy of the student (any module with ``predict_disparity``) run at 1.5x, 1x and
  0.5x; it satisfies :class:`MultiScaleTeacher`.
* :class:`ModuleTeacher` — any ``nn.Module`` or callable, e.g. a user's DPT-Hybrid.
* :class:`PrecomputedTeacher` — crops the patch windows out of precomputed full-image maps (:class:`WindowTeacher`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semcommon.io import read_depth
from sgdepth_pkd.patch_kd.select import Rect

__all__ = [
    "DisparityTeacher",
    "ModuleTeacher",
    "MultiScaleTeacher",
    "PrecomputedTeacher",
    "SelfTeacher",
    "WindowTeacher",
    "as_disparity_stack",
    "freeze",
    "resize_stack",
]


class DisparityTeacher(Protocol):
    """Maps a patch stack N×3×h×w to disparity N×1×h×w (or N×h×w)."""

    def __call__(self, patches: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class MultiScaleTeacher(Protocol):
    """Returns one N×1×h×w disparity stack per scale, each resized back to h×w (order: HR, MR, LR)."""

    def predict_scales(self, patches: torch.Tensor) -> list[torch.Tensor]: ...


@runtime_checkable
class WindowTeacher(Protocol):
    """Returns the N×1×size×size maps of the windows ``rects`` of the image called ``name`` (size H×W)."""

    def predict_windows(
        self, name: str, rects: Sequence[Rect], image_size: tuple[int, int], size: int
    ) -> torch.Tensor: ...


def freeze(module: object) -> None:
    """Put an ``nn.Module`` in eval mode and switch its parameters' gradients off (no-op for plain callables)."""
    if isinstance(module, nn.Module):
        module.eval()
        module.requires_grad_(False)


def resize_stack(stack: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of an N×C×h×w stack; identity when the size already matches."""
    if tuple(stack.shape[-2:]) == tuple(size):
        return stack
    return F.interpolate(stack, size=size, mode="bilinear", align_corners=False)


def as_disparity_stack(output: torch.Tensor, count: int, size: tuple[int, int], name: str) -> torch.Tensor:
    """Check a teacher's output and return it as a detached float32 N×1×h×w stack."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{name} must return a tensor, got {type(output).__name__}")
    if output.dim() == 3:
        output = output.unsqueeze(1)
    expected = (count, 1, *size)
    if tuple(output.shape) != expected:
        raise ValueError(f"{name} returned shape {tuple(output.shape)}, expected {expected} (or N×h×w)")
    if not torch.isfinite(output).all():
        raise ValueError(f"{name} returned NaN or infinite values")
    return output.detach().float()


def _check_patches(patches: torch.Tensor) -> None:
    if patches.dim() != 4 or patches.shape[1] != 3:
        raise ValueError(f"patches must be N×3×h×w, got shape {tuple(patches.shape)}")


class SelfTeacher:
    """A frozen, separately trained SGDepth (or any module with ``predict_disparity(B×3×H×W) -> B×1×H×W``).

    :meth:`predict_scales` resizes the patch stack bilinearly to each scale (default 1.5x, 1x, 0.5x → 192/128/64 px
    for 128 patches), runs the model and resizes every disparity back to the patch size. The model is put in eval
    mode with gradients switched off on every call, so pass a separate trained copy, never the student itself.
    """

    def __init__(self, model: object, scales: Sequence[float] = (1.5, 1.0, 0.5)) -> None:
        if not callable(getattr(model, "predict_disparity", None)):
            raise TypeError("model must have a predict_disparity(images) method")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive, got {tuple(scales)}")
        freeze(model)
        self.model = model
        self.scales = tuple(float(s) for s in scales)

    @classmethod
    def from_checkpoint(cls, path: str | Path, scales: Sequence[float] = (1.5, 1.0, 0.5), **kwargs) -> SelfTeacher:
        """Build the teacher from an SGDepth checkpoint via ``sgdepth_pkd.checkpoint.load_pretrained``."""
        from sgdepth_pkd.checkpoint import load_pretrained

        return cls(load_pretrained(path, **kwargs), scales=scales)

    def _predict(self, images: torch.Tensor) -> torch.Tensor:
        freeze(self.model)
        with torch.no_grad():
            output = self.model.predict_disparity(images)
        return as_disparity_stack(output, images.shape[0], tuple(images.shape[-2:]), "self teacher")

    def predict_scales(self, patches: torch.Tensor) -> list[torch.Tensor]:
        """One N×1×h×w disparity stack per scale, in the order of ``scales``."""
        _check_patches(patches)
        size = tuple(patches.shape[-2:])
        outputs = []
        for scale in self.scales:
            scaled = resize_stack(patches, (round(size[0] * scale), round(size[1] * scale)))
            outputs.append(resize_stack(self._predict(scaled), size))
        return outputs

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        """Single-scale (1x) disparity N×1×h×w."""
        _check_patches(patches)
        return self._predict(patches)


class ModuleTeacher:
    """Any frozen ``nn.Module`` or callable mapping N×3×h×w patches to N×1×h×w or N×h×w (e.g. DPT-Hybrid).

    Like the original, the module receives the ImageNet-normalised patches as they are (not DPT's own preprocessing).
    """

    def __init__(self, module: nn.Module | Callable[[torch.Tensor], torch.Tensor], name: str = "teacher") -> None:
        if not callable(module):
            raise TypeError("module must be callable")
        freeze(module)
        self.module = module
        self.name = name

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        _check_patches(patches)
        freeze(self.module)
        with torch.no_grad():
            output = self.module(patches)
        return as_disparity_stack(output, patches.shape[0], tuple(patches.shape[-2:]), self.name)


class PrecomputedTeacher:
    """Teacher reading precomputed full-image maps ``<folder>/<name><ext>`` and cropping the patch windows.

    Files: ``.npy`` (float H×W) or anything :func:`semcommon.io.read_depth` reads (16-bit PNG divided by
    ``png_scale``, PFM, TIFF). With ``kind="depth"`` values are inverted (1/d, invalid or zero depth → 0). A map whose
    size differs from the image is resized bilinearly to it first; each window is then resized to the patch size.

    Difference to the original: the authors run DPT on each 128×128 normalised patch, so every patch gets its own
    local-context prediction; a precomputed map comes from a full-image run with global context (and whatever
    preprocessing produced it). The joint min-max normalisation and per-patch affine alignment still apply, so the
    result is a comparable but not identical target.
    """

    def __init__(
        self,
        folder: str | Path,
        kind: Literal["inverse_depth", "depth"] = "inverse_depth",
        png_scale: float = 1.0,
        extensions: Sequence[str] = (".npy", ".png", ".pfm", ".tif", ".tiff"),
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"folder: {self.folder} is not a directory")
        if kind not in ("inverse_depth", "depth"):
            raise ValueError(f"kind must be 'inverse_depth' or 'depth', got {kind!r}")
        if png_scale <= 0:
            raise ValueError(f"png_scale must be positive, got {png_scale}")
        self.kind = kind
        self.png_scale = png_scale
        self.extensions = tuple(extensions)

    def _path(self, name: str) -> Path:
        for ext in self.extensions:
            path = self.folder / f"{name}{ext}"
            if path.is_file():
                return path
        raise FileNotFoundError(f"name: no map for {name!r} in {self.folder} (tried {', '.join(self.extensions)})")

    def load_map(self, name: str) -> torch.Tensor:
        """The full-image inverse-depth map of ``name`` as a float32 H×W tensor."""
        path = self._path(name)
        if path.suffix == ".npy":
            values = np.load(path).astype(np.float32)
            valid = np.isfinite(values)
        else:
            values, valid = read_depth(path, scale=self.png_scale)
        if values.ndim != 2:
            raise ValueError(f"{path}: expected an H×W map, got shape {values.shape}")
        if self.kind == "depth":
            valid &= values > 0
            values = np.divide(1.0, values, out=np.zeros_like(values), where=valid)
        return torch.from_numpy(np.where(valid, values, 0.0).astype(np.float32))

    def predict_windows(self, name: str, rects: Sequence[Rect], image_size: tuple[int, int], size: int) -> torch.Tensor:
        """Crops of the windows ``rects`` (row0, col0, h, w) of ``name``'s map, each resized to size×size."""
        full = resize_stack(self.load_map(name)[None, None], image_size)
        crops = [resize_stack(full[..., r : r + h, c : c + w], (size, size)) for r, c, h, w in rects]
        return torch.cat(crops) if crops else full.new_zeros(0, 1, size, size)
