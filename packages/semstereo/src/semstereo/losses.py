"""SemStereo training losses with the authors' exact semantics (masks, weights, aggregation).

Disparities are in full-resolution pixels; labels are class maps ``B×H×W`` (float or int) with 5 = "unlabelled".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

#: Weights of the four disparity estimates ``[final, final 1/4, attention, attention 1/4]``.
DISP_LOSS_WEIGHTS: tuple[float, ...] = (1.0, 0.6, 0.5, 0.3)
#: Label-loss factor per training stage (stage 1 = attention weights only).
LABEL_LOSS_FACTOR: dict[int, float] = {1: 1.6, 2: 2.4}
IGNORE_CLASS = 5
Objective = Literal["us3d", "whu"]


def disparity_mask(gt: torch.Tensor, maxdisp: int, signed: bool = True) -> torch.Tensor:
    """Valid ground truth: ``-M <= gt < M`` (US3D, signed) or ``0 < gt < M`` (WHU). Excludes the -999 no-data."""
    low = (gt >= -maxdisp) if signed else (gt > 0)
    return (gt < maxdisp) & low


def _check_same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def disparity_loss_train(
    estimates: Sequence[torch.Tensor],
    gts: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    weights: Sequence[float] = DISP_LOSS_WEIGHTS,
) -> torch.Tensor:
    """Original ``model_loss_train``: ``sum_i w_i · SmoothL1(est_i[mask_i], gt_i[mask_i])`` (mean, beta 1).

    Like the original's ``zip``, the sum stops at the shortest list: stage 1 (two estimates) uses weights 1.0, 0.6.
    """
    total = estimates[0].new_zeros(())
    for est, gt, mask, weight in zip(estimates, gts, masks, weights, strict=False):
        _check_same(est, gt, "disparity_loss_train")
        total = total + weight * F.smooth_l1_loss(est[mask], gt[mask], reduction="mean")
    return total


def disparity_loss_test(estimate: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Original ``model_loss_test``: mean L1 over the masked pixels."""
    _check_same(estimate, gt, "disparity_loss_test")
    return F.l1_loss(estimate[mask], gt[mask], reduction="mean")


def dice_loss(logits: torch.Tensor, label: torch.Tensor, num_classes: int = 6, epsilon: float = 1e-6) -> torch.Tensor:
    """One global soft Dice over classes 0..K-2 (the last class dropped from both), all pixels and images.

    ``1 - (2·sum(P·T) + eps) / (sum P + sum T + eps)``; pixels labelled K-1 stay in P's other channels.
    """
    prob = torch.softmax(logits, dim=1)[:, :-1]
    onehot = F.one_hot(label.long(), num_classes).permute(0, 3, 1, 2).to(prob.dtype)[:, :-1]
    inter = 2 * (prob * onehot).sum()
    sets = prob.sum() + onehot.sum()
    sets = torch.where(sets == 0, inter, sets)
    return 1 - (inter + epsilon) / (sets + epsilon)


def label_loss(
    logits: torch.Tensor, label: torch.Tensor, stage: int = 2, num_classes: int = 6, ignore_index: int = IGNORE_CLASS
) -> torch.Tensor:
    """Original ``model_label_loss``: ``(CE(ignore 5) + Dice) × 1.6`` (stage 1) or ``× 2.4`` (stage 2)."""
    return LABEL_LOSS_FACTOR[stage] * label_loss_terms(logits, label, num_classes, ignore_index).sum()


def label_loss_terms(
    logits: torch.Tensor, label: torch.Tensor, num_classes: int = 6, ignore_index: int = IGNORE_CLASS
) -> torch.Tensor:
    """``[cross-entropy (ignore_index), dice]`` as a 2-vector."""
    if logits.dim() != 4 or logits.shape[0] != label.shape[0] or logits.shape[2:] != label.shape[1:]:
        raise ValueError(f"label_loss: logits {tuple(logits.shape)} do not match label {tuple(label.shape)}")
    ce = F.cross_entropy(logits, label.long(), ignore_index=ignore_index)
    return torch.stack((ce, dice_loss(logits, label, num_classes)))


def warp_label_to_right(label: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The left label map resampled as LRSC does: ``y[b,h,x] = label[b,h, int(clamp(x - d[b,h,x], 0, W-1))]``."""
    _check_same(label, disparity, "warp_label_to_right")
    width = label.shape[-1]
    cols = torch.arange(width, device=disparity.device, dtype=disparity.dtype)
    source = (cols - disparity.detach()).clamp(0, width - 1).long()
    return torch.gather(label.long(), -1, source)


def lrsc_loss(label_right: torch.Tensor, disparity: torch.Tensor, label_left: torch.Tensor) -> torch.Tensor:
    """Left-Right Semantic Consistency: CE of the right-view logits against the warped left labels.

    As in the original: ``ignore_index=-1`` (class 5 IS a target), out-of-view positions clamped to the border,
    no gradient through the disparity.
    """
    target = warp_label_to_right(label_left, disparity)
    return F.cross_entropy(label_right, target, ignore_index=-1)


def train_losses(
    estimates: Sequence[torch.Tensor],
    label_left: torch.Tensor,
    label_right: torch.Tensor | None,
    gt: torch.Tensor,
    gt_4: torch.Tensor,
    label: torch.Tensor | None,
    maxdisp: int = 64,
    stage: int = 2,
    objective: Objective = "us3d",
    lrsc: bool = True,
) -> dict[str, torch.Tensor]:
    """The training objective; ``estimates`` as the model returns them in training mode (stage 2: 4, stage 1: 2).

    ``objective="us3d"`` (``main_us3d.py``): ``total = disp_loss + label_loss + lrsc_loss`` with the signed mask
    ``-M <= gt < M``. ``objective="whu"``: disparity loss with the mask ``0 < gt < M``; no label loss (WHU has no
    labels, ``label`` may be ``None``), plus the LRSC self-supervision when ``lrsc`` (its target is ``label`` when
    given, else the argmax of the detached left logits); ``lrsc=False`` is the released ``main_whu.py`` (disparity
    only). ``gt_4 = gt[:, ::4, ::4]``.
    """
    if objective not in ("us3d", "whu"):
        raise ValueError(f"train_losses: objective must be 'us3d' or 'whu', got {objective!r}")
    signed = objective == "us3d"
    masks = [disparity_mask(gt, maxdisp, signed), disparity_mask(gt_4, maxdisp, signed)] * 2
    disp = disparity_loss_train(estimates, [gt, gt_4, gt, gt_4], masks)
    zero = disp.new_zeros(())
    if signed:
        if label is None or label_right is None:
            raise ValueError("train_losses: the US3D objective needs the label map and the right-view logits")
        lab = label_loss(label_left, label, stage=stage)
        lrsc_term = lrsc_loss(label_right, estimates[0], label) if lrsc else zero
    else:
        lab = zero
        if lrsc:
            if label_right is None:
                raise ValueError("train_losses: LRSC needs the right-view logits (model in training mode)")
            target = label if label is not None else label_left.detach().argmax(1)
            lrsc_term = lrsc_loss(label_right, estimates[0], target)
        else:
            lrsc_term = zero
    return {"disp_loss": disp, "label_loss": lab, "lrsc_loss": lrsc_term, "total": disp + lab + lrsc_term}
