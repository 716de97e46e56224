"""Training losses (spec §c): SSIM / photometric error, minimum reprojection with automasking and edge-aware
smoothness (§c.1–c.2), semantic-depth consistency l_SDcon (§c.3), weighted segmentation cross entropy (§c.5),
patch knowledge-distillation loss l_patch (§c.7) and the reconstructed totals (§c.4, §c.9).

Shapes: images B×3×H×W in [0, 1], disparities B×1×H×W, label maps B×1×H×W (integer), moving masks B×H×W.
Every loss returns a 0-d tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from sgdepth_pkd.config import SEG_MASK_STATIC_CLASSES
from sgdepth_pkd.geometry import check_tensor, warp_frames
from sgdepth_pkd.model.sgdepth import segmentation_mask

__all__ = [
    "NON_CONSISTENCY_CLASSES",
    "SDCON_CLASSES",
    "SEG_CLASS_WEIGHTS",
    "DepthLossConfig",
    "binary_label_map",
    "class_label_map",
    "depth_branch_loss",
    "depth_reprojection_losses",
    "edge_aware_smoothness",
    "patch_kd_loss",
    "photometric_error",
    "reprojection_loss_map",
    "self_supervised_depth_loss",
    "semantic_depth_consistency",
    "ssim_dissimilarity",
    "total_loss",
    "weighted_segmentation_ce",
]

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2

SDCON_CLASSES: tuple[int, ...] = (5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18)
"""Cityscapes trainIds constrained by l_SDcon, in the original order (pole … bicycle)."""

NON_CONSISTENCY_CLASSES: tuple[int, ...] = SEG_MASK_STATIC_CLASSES
"""Classes the model zeroes in ``('segmentation_mask', 0)`` (road, sidewalk, building, wall, fence, sky, void)."""

SEG_CLASS_WEIGHTS: tuple[float, ...] = (
    2.8149201869965, 6.9850029945374, 3.7890393733978, 9.9428062438965, 9.7702074050903,
    9.5110931396484, 10.311357498169, 10.026463508606, 4.6323022842407, 9.5608062744141,
    7.8698215484619, 9.5168733596802, 10.373730659485, 6.6616044044495, 10.260489463806,
    10.287888526917, 10.289801597595, 10.405355453491, 10.138095855713, 0.0,
)  # fmt: skip
"""Cross-entropy class weights of SGDepth's Cityscapes training (index = trainId, class 19 never supervised)."""

PATCH_SIZE = 128
"""Hard-coded patch side of the patch KD code; also the SSIM normaliser of l_patch."""


@dataclass(frozen=True)
class DepthLossConfig:
    """Options of the self-supervised depth loss with the paper/CLI defaults.

    ``automasking`` / ``min_reprojection``: monodepth2 automasking and per-pixel minimum over the source frames
    (``--depth-disable-automasking`` / ``--depth-avg-reprojection`` switch them off); ``ssim_weight`` α of
    pe = α·SSIMd + (1 − α)·L1; ``min_depth`` / ``max_depth`` define the disparity scaling of the view synthesis;
    ``num_scales`` = ``--model-depth-resolutions``; ``consistent_grid`` see :func:`sgdepth_pkd.geometry.warp_image`.
    """

    disparity_smoothness: float = 1e-3
    automasking: bool = True
    min_reprojection: bool = True
    ssim_weight: float = 0.85
    min_depth: float = 0.1
    max_depth: float = 100.0
    num_scales: int = 4
    consistent_grid: bool = False


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def _check_moving_mask(moving_mask: torch.Tensor | None, like: torch.Tensor) -> None:
    """A DC moving mask (if given) must be B×H×W for the B×C×H×W tensor ``like``."""
    if moving_mask is None:
        return
    check_tensor(moving_mask, "moving_mask", ndim=3)
    expected = (like.shape[0], *like.shape[-2:])
    if moving_mask.shape != expected:
        raise ValueError(f"moving_mask: expected B×H×W = {expected}, got {tuple(moving_mask.shape)}")


# ----------------------------------------------------------------------------------------------- photometric (§c.2)


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel SSIM dissimilarity clamp((1 − SSIM)/2, 0, 1), B×C×H×W → B×C×H×W.

    Local statistics from 3×3 average pooling (stride 1) on reflection-padded inputs; C1 = 0.01², C2 = 0.03².
    """
    check_tensor(x, "x", ndim=4)
    check_tensor(y, "y", ndim=4)
    _check_same_shape(x, y, "x/y")
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """pe = α·mean_c SSIMd + (1 − α)·mean_c |pred − target|, B×C×H×W → B×1×H×W."""
    _check_same_shape(pred, target, "pred/target")
    l1 = (pred - target).abs().mean(1, keepdim=True)
    ssim = ssim_dissimilarity(pred, target).mean(1, keepdim=True)
    return ssim_weight * ssim + (1 - ssim_weight) * l1


def _frame_errors(
    target: torch.Tensor, frames: Sequence[torch.Tensor], min_reprojection: bool, ssim_weight: float
) -> torch.Tensor:
    """Photometric errors of ``frames`` against ``target``: B×F×H×W, or their average B×1×H×W."""
    errors = torch.cat([photometric_error(frame, target, ssim_weight) for frame in frames], dim=1)
    return errors if min_reprojection else errors.mean(1, keepdim=True)


def reprojection_loss_map(
    target: torch.Tensor,
    sources: Sequence[torch.Tensor],
    warped: Sequence[torch.Tensor],
    automasking: bool = True,
    min_reprojection: bool = True,
    ssim_weight: float = 0.85,
    identity: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel reprojection loss B×H×W from the target B×3×H×W, unwarped sources and their warps (same order).

    With ``min_reprojection`` the minimum over the frames is taken, otherwise their average; with ``automasking``
    the (equally reduced) errors of the unwarped sources join the minimum (monodepth2, no tie-break noise).
    ``identity`` passes those unwarped-source errors precomputed (they do not depend on the scale).
    """
    if not warped or (automasking and len(sources) != len(warped)):
        raise ValueError(f"sources/warped: need matching non-empty lists, got {len(sources)} and {len(warped)}")
    errors = _frame_errors(target, warped, min_reprojection, ssim_weight)
    if automasking:
        if identity is None:
            identity = _frame_errors(target, sources, min_reprojection, ssim_weight)
        errors = torch.cat([identity, errors], dim=1)
    return errors.min(dim=1).values


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the mean-normalised disparity B×1×h×w; ``image`` B×3×H×W is resized to h×w
    (bilinear, align_corners=False). mean(|∂x d|·e^{−mean_c|∂x I|}) + mean(|∂y d|·e^{−mean_c|∂y I|}).
    """
    check_tensor(disp, "disp", ndim=4)
    check_tensor(image, "image", ndim=4)
    image = F.interpolate(image, size=disp.shape[-2:], mode="bilinear", align_corners=False)
    disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_disp_x = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    grad_disp_y = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    grad_img_x = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


def depth_reprojection_losses(
    images: Mapping[int, torch.Tensor],
    outputs: Mapping[Any, torch.Tensor],
    config: DepthLossConfig | None = None,
    moving_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """SGDepth's ``_reprojection_losses``: the multi-scale photometric + smoothness loss.

    ``images[f]``: un-augmented frames B×3×H×W, f = 0 (target) and the sources (±1). ``outputs`` holds the
    disparities ``('disp', r)`` and the warps ``('color', f, r)`` of :func:`sgdepth_pkd.geometry.warp_frames`.
    ``moving_mask`` B×H×W (DC masking, 0 = masked) multiplies the per-pixel loss. Returns ``loss_<r>`` =
    mean(loss map) + ``disp_smth_loss_<r>`` (= weight·smoothness/2^r) for every scale and their mean
    ``loss_depth_reprojection``.
    """
    config = config or DepthLossConfig()
    if 0 not in images or len(images) < 2:
        raise ValueError(f"images: need the target frame 0 and at least one source, got frames {list(images)}")
    target = check_tensor(images[0], "images[0]", ndim=4)
    frames = sorted(f for f in images if f != 0)
    _check_moving_mask(moving_mask, target)
    sources = [images[f] for f in frames]
    identity = (
        _frame_errors(target, sources, config.min_reprojection, config.ssim_weight) if config.automasking else None
    )
    losses: dict[str, torch.Tensor] = {}
    for scale in range(config.num_scales):
        missing = [key for key in [("disp", scale), *(("color", f, scale) for f in frames)] if key not in outputs]
        if missing:
            raise KeyError(f"outputs: missing {missing}")
        warped = [outputs[("color", f, scale)] for f in frames]
        loss_map = reprojection_loss_map(
            target, sources, warped, config.automasking, config.min_reprojection, config.ssim_weight, identity
        )
        if moving_mask is not None:
            loss_map = loss_map * moving_mask
        smoothness = edge_aware_smoothness(outputs[("disp", scale)], target)
        smoothness = config.disparity_smoothness * smoothness / 2**scale
        losses[f"disp_smth_loss_{scale}"] = smoothness
        losses[f"loss_{scale}"] = loss_map.mean() + smoothness
    losses["loss_depth_reprojection"] = torch.stack([losses[f"loss_{r}"] for r in range(config.num_scales)]).mean()
    return losses


def self_supervised_depth_loss(
    images: Mapping[int, torch.Tensor],
    disps: Sequence[torch.Tensor],
    K: torch.Tensor,
    inv_K: torch.Tensor,
    cam_T_cams: Mapping[int, torch.Tensor],
    config: DepthLossConfig | None = None,
    moving_mask: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], dict[Any, torch.Tensor]]:
    """View synthesis of the first ``config.num_scales`` disparities (B×1×(H/2^r)×(W/2^r)) with the config's depth
    range and grid convention, then :func:`depth_reprojection_losses`. Returns (losses, warp outputs incl. the
    ``('disp', r)`` entries)."""
    config = config or DepthLossConfig()
    if len(disps) < config.num_scales:
        raise ValueError(f"disps: need {config.num_scales} resolutions, got {len(disps)}")
    sources = {frame: image for frame, image in images.items() if frame != 0}
    outputs: dict[Any, torch.Tensor] = warp_frames(
        disps[: config.num_scales],
        sources,
        K,
        inv_K,
        cam_T_cams,
        config.min_depth,
        config.max_depth,
        config.consistent_grid,
    )
    outputs.update({("disp", scale): disp for scale, disp in enumerate(disps[: config.num_scales])})
    return depth_reprojection_losses(images, outputs, config, moving_mask), outputs


# ----------------------------------------------------------------------------------------------- l_SDcon (§c.3)


def class_label_map(logits: torch.Tensor) -> torch.Tensor:
    """Segmentation logits B×K×H×W → class label map B×1×H×W (int64, argmax with classes {0,1,2,3,4,10,19} set to
    0): the label map l_SDcon needs to work "as the paper intends"."""
    check_tensor(logits, "logits", ndim=4)
    with torch.no_grad():
        return segmentation_mask(logits, NON_CONSISTENCY_CLASSES, mode="classes")


def binary_label_map(logits: torch.Tensor) -> torch.Tensor:
    """Segmentation logits B×K×H×W → the model's ``('segmentation_mask', 0)`` B×1×H×W (int64, 0/1): argmax in
    {0,1,2,3,4,10,19} → 0, else 1. Fed to l_SDcon it reproduces the shipped behaviour (loss ≡ 0)."""
    check_tensor(logits, "logits", ndim=4)
    with torch.no_grad():
        return segmentation_mask(logits, NON_CONSISTENCY_CLASSES, mode="binary")


_NEIGHBOUR_SHIFTS: dict[str, tuple[tuple[int, int], ...]] = {
    # (row shift, column shift) per offset; the authors' roll over axes (0, 1) of a 1×H×W map turns the offsets
    # (0,1), (1,0), (0,-1), (-1,0) into row shifts 1, 0, -1, 0 and never shifts columns.
    "vertical": ((1, 0), (0, 0), (-1, 0), (0, 0)),
    "four": ((1, 0), (0, 1), (-1, 0), (0, -1)),
}


def _interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels of a B×1×H×W 0/1 mask whose 3×3 cross (zero padding) lies entirely inside it (cross-kernel erosion)."""
    cross = mask.new_tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]).reshape(1, 1, 3, 3)
    return F.conv2d(mask, cross, padding=1) == 5


def semantic_depth_consistency(
    label_map: torch.Tensor,
    disp: torch.Tensor,
    classes: Sequence[int] = SDCON_CLASSES,
    neighbours: Literal["vertical", "four"] = "vertical",
    min_pixels: int = 10,
    margin: float = 0.05,
) -> torch.Tensor:
    """l_SDcon exactly as coded (``DepthLosses.depth_seg_losses``): label map B×1×H×W (integer), disparity
    B×1×H×W → 0-d tensor.

    For every class c and image j with more than ``min_pixels`` pixels of c: n += 1, P = [S_j = c]·D_j, and, if
    the class has interior pixels E (cross erosion), L += 255·Σ_E Σ_offsets max(P(neighbour) − P − 0.05·P, 0)/|E|.
    Result 10·L/n/4. ``neighbours="vertical"`` (default, authors and fixture): the original roll only shifts rows,
    so two of the four offsets compare a pixel with itself (contributing max(−0.05·P, 0) = 0 for D ≥ 0);
    ``"four"`` uses the intended 4-neighbourhood. Cyclic wrap never matters (border pixels are never interior).

    The loss uses whatever label map it is given. As shipped, the model passes its *binary* mask
    (:func:`binary_label_map`), which never equals a class ≥ 5, so the loss is 0; pass :func:`class_label_map` for the
    loss the paper intends. When n = 0 the original returns the Python int 0; here a zero tensor attached to
    ``disp``'s graph (zero gradient) is returned instead.
    """
    check_tensor(label_map, "label_map", ndim=4)
    check_tensor(disp, "disp", ndim=4)
    if label_map.is_floating_point() or label_map.shape[1] != 1:
        raise ValueError(f"label_map: expected an integer B×1×H×W map, got {label_map.dtype} {tuple(label_map.shape)}")
    _check_same_shape(label_map, disp, "label_map/disp")
    if neighbours not in _NEIGHBOUR_SHIFTS:
        raise ValueError(f"neighbours: expected 'vertical' or 'four', got {neighbours!r}")
    total = disp.new_zeros(())
    count = 0
    for cls in classes:
        mask = (label_map == cls).to(disp.dtype)
        valid = mask.sum(dim=(1, 2, 3)) > min_pixels
        count += int(valid.sum())
        if not valid.any():
            continue
        masked = mask * disp
        interior = _interior(mask).to(disp.dtype)
        hinge = sum(
            F.relu(torch.roll(masked, shifts=shift, dims=(2, 3)) - masked - margin * masked)
            for shift in _NEIGHBOUR_SHIFTS[neighbours]
        )
        interior_count = interior.sum(dim=(1, 2, 3))
        per_image = (hinge * interior).sum(dim=(1, 2, 3)) / interior_count.clamp_min(1)
        use = valid & (interior_count > 0)
        total = total + 255 * per_image[use].sum()
    if count == 0:
        return disp.sum() * 0
    return 10 * total / count / 4


# ----------------------------------------------------------------------------------------------- segmentation (§c.5)


def weighted_segmentation_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: Sequence[float] = SEG_CLASS_WEIGHTS,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Weighted cross entropy Σ w_y·nll / Σ w_y over non-ignored pixels; logits B×K×H×W, target trainIds B×1×H×W
    or B×H×W (float or integer, ``ignore_index`` skipped)."""
    check_tensor(logits, "logits", ndim=4)
    check_tensor(target, "target")
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target: expected B×1×H×W or B×H×W matching logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if len(class_weights) != logits.shape[1]:
        raise ValueError(f"class_weights: expected {logits.shape[1]} weights, got {len(class_weights)}")
    weight = torch.tensor(class_weights, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, target.long(), weight=weight, ignore_index=ignore_index)


# ----------------------------------------------------------------------------------------------- patch KD (§c.7)


def patch_kd_loss(
    disp: torch.Tensor,
    disp_a: torch.Tensor,
    patch_counts: torch.Tensor | Sequence[int],
    moving_mask: torch.Tensor | None = None,
    mask_broadcast: Literal["per_image", "authors"] = "per_image",
) -> torch.Tensor:
    """l_patch = 2·(0.2·S + 0.8·MSE) between the student disparity and the patch-refined target, both B×1×H×W.

    S = Σ SSIMd(D, D_a) / (N_p·M·128) with N_p = Σ ``patch_counts`` and M the number of H×W maps compared (B; S =
    1e-7 when N_p = 0); MSE over all elements. ``disp_a`` is a constant target (detached). ``moving_mask`` B×H×W
    multiplies both maps first: ``mask_broadcast="per_image"`` (default) masks each image with its own mask;
    ``"authors"`` reproduces the original (B,1,H,W)·(B,H,W) broadcasting to B×B×H×W (every image masked by every
    mask, so M = B², as the ``loss_masked`` fixture confirms). The default is the corrected form because the quirk
    never affected the authors' results (patch KD was active in epochs ≈5–14, DC masking starts at epoch 15) and
    both agree for B = 1.
    """
    check_tensor(disp, "disp", ndim=4)
    check_tensor(disp_a, "disp_a", ndim=4)
    _check_same_shape(disp, disp_a, "disp/disp_a")
    if mask_broadcast not in ("per_image", "authors"):
        raise ValueError(f"mask_broadcast: expected 'per_image' or 'authors', got {mask_broadcast!r}")
    counts = torch.as_tensor(patch_counts)
    if counts.ndim != 1 or counts.is_floating_point() or (counts < 0).any():
        raise ValueError(f"patch_counts: expected a 1-D sequence of non-negative integers, got {counts.tolist()}")
    height, width = disp.shape[-2:]
    target = disp_a.detach()
    _check_moving_mask(moving_mask, disp)
    if moving_mask is not None:
        mask = moving_mask if mask_broadcast == "authors" else moving_mask[:, None]
        disp, target = disp * mask, target * mask
    num_patches = int(counts.sum())
    num_maps = disp.numel() // (height * width)
    if num_patches > 0:
        structure = ssim_dissimilarity(disp, target).sum() / (num_patches * num_maps * PATCH_SIZE)
    else:
        structure = disp.new_tensor(1e-7)
    mse = ((disp - target) ** 2).mean()
    return 2 * (0.2 * structure + 0.8 * mse)


# ----------------------------------------------------------------------------------------------- totals (§c.4, §c.9)


def depth_branch_loss(loss_depth_reprojection: torch.Tensor, sdcon: torch.Tensor) -> torch.Tensor:
    """``loss_depth`` = 2·loss_depth_reprojection + l_SDcon (§c.4)."""
    return 2 * loss_depth_reprojection + sdcon


def total_loss(
    loss_depth_reprojection: torch.Tensor,
    sdcon: torch.Tensor,
    loss_seg: torch.Tensor,
    loss_patch: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reconstructed training objective (§c.9): (2·reprojection + l_SDcon) + CE + l_patch, where ``loss_patch`` is
    :func:`patch_kd_loss`'s value (already 2·(0.2·S + 0.8·MSE)); omit it outside the distillation phase."""
    total = depth_branch_loss(loss_depth_reprojection, sdcon) + loss_seg
    return total if loss_patch is None else total + loss_patch
