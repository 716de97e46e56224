"""Dual-teacher patch fusion building the distillation target ``disp_a`` (spec §c.8 steps 2-8).

Per image: select patches (:mod:`.select`), weight the self-teacher's three scales per pixel by the distance to
Laplacian edges, normalise the external teacher jointly over the patch stack, align every teacher patch affinely to
the student disparity, mosaic the patches with soft masks, align the mosaics globally and blend them into the student
disparity. Fusion arithmetic runs in float64 NumPy on the CPU (the authors' least-squares fits are float64); the
result is returned in the student's dtype and device, detached (a constant target).

Robustness beyond the original (which crashes in these cases): a patch without edges uses the "between" weights
everywhere, an image without selected patches returns its disparity unchanged with patch count 0, constant teacher
maps or patches never divide by zero, and all grids, masks and Gaussians scale with the image and patch sizes (the
original hard-codes 192×640 and 128).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from sgdepth_pkd.patch_kd.select import Rect, SelectionConfig, select_patches
from sgdepth_pkd.patch_kd.teachers import (
    DisparityTeacher,
    MultiScaleTeacher,
    WindowTeacher,
    as_disparity_stack,
    resize_stack,
)

__all__ = [
    "DistillationResult",
    "PatchDetails",
    "PatchKDConfig",
    "align_to_patch",
    "build_distillation_target",
    "corner_mask",
    "distill_batch",
    "distill_image",
    "edge_distance",
    "final_blend",
    "fit_line",
    "fuse_scales",
    "generate_mask",
    "global_align",
    "joint_minmax",
    "laplacian_edges",
    "mosaic",
    "overlap_mask",
    "weight_classes",
]

NEAR, BETWEEN, FAR = 0, 1, 2
"""Weight classes: distance to the nearest edge < dmin, within [dmin, dmax], > dmax."""


@dataclass(frozen=True)
class PatchKDConfig:
    """Patch-KD fusion settings (paper defaults; pixel constants are relative to ``selection.patch_size``).

    Attributes:
        selection: patch selection (128 px patches, stride factor 0.75, growth 32).
        near_weights, between_weights, far_weights: per-class (HR, MR, LR) weights of the self-teacher scales.
        dmin_factor, dmax_factor: dmin = 0.1·P²/n_e and dmax = 2·P²/n_e for a P×P patch with n_e edge pixels.
        uint8_wrap: the authors' quirk: the float gray patch is cast to uint8 by truncation toward zero modulo 256, so
            slightly negative normalised values become 0 and values ≤ −1 wrap to 255, 254, … (default True, needed
            for parity). False saturates to [0, 255] instead.
        zero_replacement: teacher values equal to 0 are replaced by this before the per-patch rescale (1e-6).
        ramp_row_factor: patches with row0 > factor·P are mosaicked with the horizontal distance ramp, the others
            with the Gaussian mask (40 px at P = 128).
        corner_pad_factor: the Gaussian overlap mask is ``generate_mask(P + pad)[pad:, pad:]``, pad = factor·P
            (the authors' 160 → 128 crop).
        self_weight, external_weight: mix of the globally aligned mosaics (0.6 / 0.4).
        blend: strength of the final blend into the student disparity (0.6).
        gaussian_scale, gaussian_offset: the final Gaussian G becomes scale·G + offset (0.5, 0.01).
    """

    selection: SelectionConfig = field(default_factory=SelectionConfig)
    near_weights: tuple[float, float, float] = (0.3, 0.7, 0.0)
    between_weights: tuple[float, float, float] = (0.25, 0.7, 0.05)
    far_weights: tuple[float, float, float] = (0.15, 0.7, 0.15)
    dmin_factor: float = 0.1
    dmax_factor: float = 2.0
    uint8_wrap: bool = True
    zero_replacement: float = 1e-6
    ramp_row_factor: float = 40 / 128
    corner_pad_factor: float = 0.25
    self_weight: float = 0.6
    external_weight: float = 0.4
    blend: float = 0.6
    gaussian_scale: float = 0.5
    gaussian_offset: float = 0.01

    def __post_init__(self) -> None:
        lengths = {len(self.near_weights), len(self.between_weights), len(self.far_weights)}
        if len(lengths) != 1:
            raise ValueError("near_weights, between_weights and far_weights must have the same length")
        if not 0 <= self.dmin_factor <= self.dmax_factor:
            raise ValueError(f"need 0 <= dmin_factor <= dmax_factor, got {self.dmin_factor}, {self.dmax_factor}")
        if not 0 <= self.blend <= 1:
            raise ValueError(f"blend must be in [0, 1], got {self.blend}")

    @property
    def class_weights(self) -> np.ndarray:
        """3×S array: row = weight class (near, between, far), column = teacher scale (HR, MR, LR)."""
        return np.array([self.near_weights, self.between_weights, self.far_weights], dtype=np.float64)


@dataclass(frozen=True)
class PatchDetails:
    """Per-image intermediate results (N patches, P = patch size).

    Attributes:
        rects: N×4 int64 windows (row0, col0, height, width) in list order (largest first).
        order: N int64 index of each patch in the kept list before sorting.
        edge_counts: N int64 Laplacian edge-pixel counts.
        weight_classes: N×P×P int64 (0 near, 1 between, 2 far).
        fused_self: N×1×P×P float32 fused self-teacher disparity.
        external_norm: N×1×P×P float32 external teacher, min-max normalised over the stack.
    """

    rects: torch.Tensor
    order: torch.Tensor
    edge_counts: torch.Tensor
    weight_classes: torch.Tensor
    fused_self: torch.Tensor
    external_norm: torch.Tensor

    @classmethod
    def empty(cls, size: int) -> PatchDetails:
        return cls(
            rects=torch.zeros(0, 4, dtype=torch.int64),
            order=torch.zeros(0, dtype=torch.int64),
            edge_counts=torch.zeros(0, dtype=torch.int64),
            weight_classes=torch.zeros(0, size, size, dtype=torch.int64),
            fused_self=torch.zeros(0, 1, size, size),
            external_norm=torch.zeros(0, 1, size, size),
        )


class DistillationResult(NamedTuple):
    """``disp_a`` B×1×H×W (detached), ``patchnums`` B int64 and one :class:`PatchDetails` per image."""

    disp_a: torch.Tensor
    patchnums: torch.Tensor
    details: list[PatchDetails]


# --- edges and per-pixel scale weights -------------------------------------------------------------------------------


def laplacian_edges(patch: np.ndarray, uint8_wrap: bool = True) -> np.ndarray:
    """Edge pixels (h×w bool) of a 3×h×w normalised RGB patch: non-zero 3×3 Laplacian of its uint8 gray image.

    gray = 0.299R + 0.587G + 0.114B (OpenCV); the uint8 cast wraps (``uint8_wrap``) or saturates; the Laplacian
    (ksize 1, reflect-101 border) is saturated to uint8, so only pixels brighter than their neighbourhood count.
    """
    rgb = np.ascontiguousarray(patch.transpose(1, 2, 0), dtype=np.float32)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    truncated = np.trunc(gray).astype(np.int64)
    levels = np.mod(truncated, 256) if uint8_wrap else np.clip(truncated, 0, 255)
    return cv2.Laplacian(levels.astype(np.uint8), cv2.CV_8U, ksize=1) != 0


def edge_distance(edges: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance (h×w float64) of every pixel to the nearest edge pixel; +inf without edges."""
    if not edges.any():
        return np.full(edges.shape, np.inf)
    return distance_transform_edt(~edges)


def weight_classes(edges: np.ndarray, config: PatchKDConfig) -> np.ndarray:
    """Weight class per pixel (h×w int64): NEAR if d < dmin, FAR if d > dmax, else BETWEEN.

    dmin/dmax = factor·h·w / n_e. A patch without edges (n_e = 0, the original divides by zero) is BETWEEN
    everywhere, i.e. gets the middle weights.
    """
    count = int(edges.sum())
    if count == 0:
        return np.full(edges.shape, BETWEEN, dtype=np.int64)
    area = edges.shape[0] * edges.shape[1]
    distance = edge_distance(edges)
    classes = np.full(edges.shape, BETWEEN, dtype=np.int64)
    classes[distance < config.dmin_factor * area / count] = NEAR
    classes[distance > config.dmax_factor * area / count] = FAR
    return classes


def fuse_scales(scale_maps: Sequence[np.ndarray], classes: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted sum of the teacher scales: Σ_s W[class, s]·map_s (each N×1×h×w; classes N×h×w)."""
    if len(scale_maps) != class_weights.shape[1]:
        raise ValueError(f"self teacher returned {len(scale_maps)} scales, the weights expect {class_weights.shape[1]}")
    per_pixel = class_weights[classes][:, None]  # N×1×h×w×S
    return sum(per_pixel[..., s] * np.asarray(m, dtype=np.float64) for s, m in enumerate(scale_maps))


def joint_minmax(stack: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1] over the whole stack (all patches jointly); a constant stack becomes 0."""
    low, high = stack.min(), stack.max()
    return (stack - low) / (high - low) if high > low else np.zeros_like(stack)


# --- affine alignment ------------------------------------------------------------------------------------------------


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line y ≈ slope·x + intercept in float64 (numpy.polyfit deg 1); constant x → slope 0."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    x_mean, y_mean = x.mean(), y.mean()
    spread = np.sum((x - x_mean) ** 2)
    slope = float(np.sum((x - x_mean) * (y - y_mean)) / spread) if spread > 0 else 0.0
    return slope, float(y_mean - slope * x_mean)


def align_to_patch(teacher: np.ndarray, target: np.ndarray, zero_replacement: float = 1e-6) -> np.ndarray:
    """Align a teacher patch (h×w) to the student patch ``target``.

    Zeros become ``zero_replacement``; the map is rescaled to (t − min t)/(max t − min t)·min(D) + std(D) (unbiased
    std; a constant map becomes std(D)), then mapped onto D with a degree-1 least-squares fit.
    """
    t = np.where(teacher == 0, zero_replacement, teacher).astype(np.float64)
    target = target.astype(np.float64)
    offset = target.std(ddof=1) if target.size > 1 else 0.0
    span = t.max() - t.min()
    t = (t - t.min()) / span * target.min() + offset if span > 0 else np.full_like(t, offset)
    slope, intercept = fit_line(t, target)
    return slope * t + intercept


# --- masks and mosaicking --------------------------------------------------------------------------------------------


def generate_mask(height: int, width: int) -> np.ndarray:
    """Soft window mask (h×w float32 in [0, 1]): ones on the central 70 %, Gaussian-blurred, min-max normalised.

    Blur σ = ⌊h/16⌋ with kernel 2·⌈2σ⌉+1 (OpenCV, reflect-101); a mask without contrast is all ones.
    """
    mask = np.zeros((height, width), dtype=np.float32)
    margin_r, margin_c = int(0.15 * height), int(0.15 * width)
    mask[margin_r : height - margin_r, margin_c : width - margin_c] = 1.0
    sigma = height // 16
    if sigma > 0:
        ksize = 2 * math.ceil(2 * sigma) + 1
        mask = cv2.GaussianBlur(mask, (ksize, ksize), sigma)
    low, high = mask.min(), mask.max()
    if high <= low:
        return np.ones_like(mask)
    return ((mask - low) / (high - low)).astype(np.float32)


def corner_mask(height: int, width: int, pad_factor: float) -> np.ndarray:
    """The top-left part of a larger soft mask: ``generate_mask(h + p, w + q)[p:, q:]`` (160 → 128 at 128 px)."""
    pad_r, pad_c = round(pad_factor * height), round(pad_factor * width)
    return generate_mask(height + pad_r, width + pad_c)[pad_r:, pad_c:]


def overlap_mask(covered: np.ndarray, use_ramp: bool, pad_factor: float) -> np.ndarray:
    """Weight (h×w) of a new patch over a canvas window whose pixels ``covered`` already hold earlier patches.

    Uncovered pixels take the patch (1). Covered pixels get either the ramp — Euclidean distance + 1 to the covered
    pixels of the window's last column, divided by its maximum — or the corner Gaussian (top-row patches, and ramp
    patches whose last column is not covered, where the ramp is undefined).
    """
    uncovered = 1.0 - covered
    if not covered.any():
        return uncovered
    if use_ramp and covered[:, -1].any():
        seeds = np.zeros_like(covered, dtype=bool)
        seeds[:, -1] = covered[:, -1]
        ramp = covered * (distance_transform_edt(~seeds) + 1.0)
        return ramp / ramp.max() + uncovered
    return covered * corner_mask(*covered.shape, pad_factor) + uncovered


def mosaic(
    disp: np.ndarray,
    rects: Sequence[Rect],
    self_maps: Sequence[np.ndarray],
    external_maps: Sequence[np.ndarray],
    config: PatchKDConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste the aligned teacher patches into zero canvases (H×W float64), last patch first.

    Each teacher patch (h×w, at its window's size) is aligned to the student window (:func:`align_to_patch`) and
    blended with :func:`overlap_mask`; both canvases use the self canvas's coverage.
    """
    z_self, z_external = np.zeros_like(disp), np.zeros_like(disp)
    ramp_row = config.ramp_row_factor * config.selection.patch_size
    for index in reversed(range(len(rects))):
        row0, col0, height, width = rects[index]
        window = (slice(row0, row0 + height), slice(col0, col0 + width))
        covered = (z_self[window] != 0).astype(np.float64)
        weight = overlap_mask(covered, row0 > ramp_row, config.corner_pad_factor)
        for canvas, maps in ((z_self, self_maps), (z_external, external_maps)):
            aligned = align_to_patch(maps[index], disp[window], config.zero_replacement)
            canvas[window] = canvas[window] * (1.0 - weight) + weight * aligned
    return z_self, z_external


def global_align(disp: np.ndarray, z_self: np.ndarray, z_external: np.ndarray, config: PatchKDConfig) -> np.ndarray:
    """Fit both mosaics to the student on the self mosaic's non-zero pixels and mix them (0.6 / 0.4)."""
    covered = z_self != 0
    mixed = np.zeros_like(disp)
    for canvas, weight in ((z_self, config.self_weight), (z_external, config.external_weight)):
        slope, intercept = fit_line(canvas[covered], disp[covered])
        mixed[covered] += weight * (slope * canvas[covered] + intercept)
    return mixed


def final_blend(disp: np.ndarray, fused: np.ndarray, covered: np.ndarray, config: PatchKDConfig) -> np.ndarray:
    """D_a = D·(1 − blend·m) + blend·m·Z with m = covered × (scale·G_box + offset) inside the coverage's bounding box.

    G_box is ``generate_mask(H, W)`` resized bilinearly (align_corners=False) to the inclusive bounding box; pixels
    of the box that no patch covers keep m = 0, i.e. D_a = D.
    """
    weight = covered.astype(np.float64)
    rows, cols = np.nonzero(covered)
    if rows.size:
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        gaussian = torch.from_numpy(generate_mask(*disp.shape))[None, None]
        box_size = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        resized = F.interpolate(gaussian, size=box_size, mode="bilinear", align_corners=False)[0, 0].numpy()
        weight[box] *= config.gaussian_scale * resized.astype(np.float64) + config.gaussian_offset
    return disp * (1.0 - config.blend * weight) + config.blend * weight * fused


# --- per image and batch ---------------------------------------------------------------------------------------------


def _crop_stack(image: torch.Tensor, rects: Sequence[Rect], size: int) -> torch.Tensor:
    """N×3×size×size stack of the windows of a 3×H×W image (grown windows resized bilinearly)."""
    return torch.cat([resize_stack(image[None, :, r : r + h, c : c + w], (size, size)) for r, c, h, w in rects])


def _external_stack(
    teacher: DisparityTeacher | WindowTeacher,
    stack: torch.Tensor,
    rects: Sequence[Rect],
    image_size: tuple[int, int],
    name: str | None,
) -> torch.Tensor:
    size = stack.shape[-1]
    if isinstance(teacher, WindowTeacher):
        if name is None:
            raise ValueError("names: a window teacher (precomputed maps) needs the image names")
        output = teacher.predict_windows(name, rects, image_size, size)
    else:
        output = teacher(stack)
    return as_disparity_stack(output, len(rects), (size, size), "external teacher")


def _to_window(stack: np.ndarray, rects: Sequence[Rect]) -> list[np.ndarray]:
    """Per-patch h×w maps from an N×1×P×P stack, resized back to each window's size."""
    maps = []
    for patch, (_, _, height, width) in zip(stack, rects, strict=True):
        tensor = torch.from_numpy(np.ascontiguousarray(patch))[None]
        maps.append(resize_stack(tensor, (height, width))[0, 0].numpy())
    return maps


def distill_image(
    image: torch.Tensor,
    disp: torch.Tensor,
    self_teacher: MultiScaleTeacher,
    external_teacher: DisparityTeacher | WindowTeacher,
    config: PatchKDConfig | None = None,
    name: str | None = None,
) -> tuple[torch.Tensor, PatchDetails]:
    """Distillation target of one image: ``image`` 3×H×W (normalised), ``disp`` 1×H×W → (disp_a 1×H×W, details).

    The teachers get an N×3×P×P patch stack on ``image``'s device (P = patch size; grown windows are resized to
    P and their teacher maps back to the window size).
    """
    if image.dim() != 3 or tuple(disp.shape) != (1, *image.shape[1:]):
        raise ValueError(f"disp must be 1×H×W matching image {tuple(image.shape)}, got {tuple(disp.shape)}")
    config = config or PatchKDConfig()
    size = config.selection.patch_size
    selection = select_patches(image, config.selection)
    if not selection.rects:
        return disp.detach().clone(), PatchDetails.empty(size)
    rects = selection.rects
    stack = _crop_stack(image.detach(), rects, size)
    patches = stack.cpu().numpy()
    edges = [laplacian_edges(p, config.uint8_wrap) for p in patches]
    classes = np.stack([weight_classes(e, config) for e in edges])

    count, patch_size = len(rects), (size, size)
    with torch.no_grad():  # teachers are frozen even when given as plain callables
        scale_maps = self_teacher.predict_scales(stack)
        raw_external = _external_stack(external_teacher, stack, rects, tuple(image.shape[-2:]), name)
    scale_maps = [as_disparity_stack(m, count, patch_size, "self teacher") for m in scale_maps]
    fused_self = fuse_scales([m.cpu().numpy() for m in scale_maps], classes, config.class_weights)
    external_norm = joint_minmax(raw_external.cpu().numpy().astype(np.float64))

    student = disp.detach()[0].cpu().numpy().astype(np.float64)
    z_self, z_external = mosaic(student, rects, _to_window(fused_self, rects), _to_window(external_norm, rects), config)
    covered = z_self != 0
    disp_a = final_blend(student, global_align(student, z_self, z_external, config), covered, config)

    details = PatchDetails(  # host-side bookkeeping, on the CPU whatever the model's device
        rects=torch.tensor(rects, dtype=torch.int64, device="cpu"),
        order=torch.tensor(selection.order, dtype=torch.int64, device="cpu"),
        edge_counts=torch.tensor([int(e.sum()) for e in edges], dtype=torch.int64, device="cpu"),
        weight_classes=torch.from_numpy(classes),
        fused_self=torch.from_numpy(fused_self.astype(np.float32)),
        external_norm=torch.from_numpy(external_norm.astype(np.float32)),
    )
    return torch.from_numpy(disp_a[None]).to(device=disp.device, dtype=disp.dtype), details


def _check_batch(color_aug: torch.Tensor, disp: torch.Tensor, names: Sequence[str] | None) -> None:
    if color_aug.dim() != 4 or color_aug.shape[1] != 3:
        raise ValueError(f"color_aug must be B×3×H×W, got shape {tuple(color_aug.shape)}")
    expected = (color_aug.shape[0], 1, *color_aug.shape[2:])
    if tuple(disp.shape) != expected:
        raise ValueError(f"disp must be {expected} (B×1×H×W like color_aug), got {tuple(disp.shape)}")
    if not torch.isfinite(color_aug).all():
        raise ValueError("color_aug contains NaN or infinite values")
    if not torch.isfinite(disp).all():
        raise ValueError("disp contains NaN or infinite values")
    if names is not None and len(names) != color_aug.shape[0]:
        raise ValueError(f"names must have one entry per image ({color_aug.shape[0]}), got {len(names)}")


def distill_batch(
    color_aug: torch.Tensor,
    disp: torch.Tensor,
    self_teacher: MultiScaleTeacher,
    external_teacher: DisparityTeacher | WindowTeacher,
    config: PatchKDConfig | None = None,
    names: Sequence[str] | None = None,
) -> DistillationResult:
    """:func:`distill_image` over a batch: color_aug B×3×H×W, disp B×1×H×W → disp_a, patchnums, details.

    ``names`` (one per image) are required only by window teachers such as :class:`PrecomputedTeacher`.
    """
    _check_batch(color_aug, disp, names)
    if not isinstance(self_teacher, MultiScaleTeacher):
        raise TypeError("self_teacher must provide predict_scales(patches), e.g. SelfTeacher")
    targets, details = [], []
    for index in range(color_aug.shape[0]):
        name = names[index] if names is not None else None
        target, info = distill_image(color_aug[index], disp[index], self_teacher, external_teacher, config, name)
        targets.append(target)
        details.append(info)
    patchnums = torch.tensor([len(info.rects) for info in details], dtype=torch.int64, device=disp.device)
    return DistillationResult(torch.stack(targets), patchnums, details)


def build_distillation_target(
    color_aug: torch.Tensor,
    disp: torch.Tensor,
    self_teacher: MultiScaleTeacher,
    external_teacher: DisparityTeacher | WindowTeacher,
    config: PatchKDConfig | None = None,
    names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``disp_a`` B×1×H×W (detached target) and ``patchnums`` B (int64); see :func:`distill_batch` for details."""
    result = distill_batch(color_aug, disp, self_teacher, external_teacher, config, names)
    return result.disp_a, result.patchnums
