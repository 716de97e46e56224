"""Losses of ClearSCD (spec c): semantic CE, BCD = BCE-with-ignore + binary Dice (smp 0.3.3 semantics), BSCC,
and the weighted training total of ``main.py``. SACL terms live in :mod:`clearscd.model.sacl`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bcd_loss", "bce_with_ignore", "bscc_loss", "dice_loss_binary", "seg_ce", "total_loss"]


def _bcd_pair(logits: torch.Tensor, target: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """B×1×H×W logits and B×H×W (or B×1×H×W) targets → both B×H×W."""
    if logits.ndim == 4 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if logits.shape != target.shape:
        raise ValueError(f"{name}: logits {tuple(logits.shape)} and target {tuple(target.shape)} do not match")
    return logits, target


def bce_with_ignore(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """``BCEWithIgnoreLoss``: element-wise BCE with logits, mean over pixels whose target ≠ ``ignore_index``."""
    logits, target = _bcd_pair(logits, target, "bce_with_ignore")
    target = target.float()
    valid = target != ignore_index
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return loss[valid].mean()


def dice_loss_binary(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, smooth: float = 0.0, eps: float = 1e-7
) -> torch.Tensor:
    """smp 0.3.3 ``DiceLoss(mode="binary", from_logits=True, ignore_index)``: one Dice over the whole batch,
    1 − 2Σpt / max(Σ(p+t), eps), zero when the batch has no positive target pixel.
    """
    logits, target = _bcd_pair(logits, target, "dice_loss_binary")
    batch = target.shape[0]
    prob = F.logsigmoid(logits).exp().reshape(batch, 1, -1)
    target = target.reshape(batch, 1, -1)
    mask = target != ignore_index
    prob = prob * mask
    target = (target * mask).type_as(prob)
    intersection = (prob * target).sum(dim=(0, 2))
    cardinality = (prob + target).sum(dim=(0, 2))
    score = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    loss = (1.0 - score) * (target.sum(dim=(0, 2)) > 0).to(prob.dtype)
    return loss.mean()


def bcd_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """``BCDLoss()``: BCE-with-ignore + binary Dice, weights 1 and 1."""
    return bce_with_ignore(logits, target, ignore_index) + dice_loss_binary(logits, target, ignore_index)


def seg_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 9) -> torch.Tensor:
    """Semantic ``CrossEntropyLoss(ignore_index=9)``: logits B×K×H×W, target B×H×W; mean over valid pixels."""
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"seg_ce: logits {tuple(logits.shape)} need B×H×W targets, got {tuple(target.shape)}")
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index)


def bscc_loss(
    pred: torch.Tensor,
    tar: torch.Tensor,
    tar_true: torch.Tensor,
    margin: float = 2.0,
    eps: float = 1e-4,
    channel_divisor: int | None = 128,
) -> torch.Tensor:
    """``BSCCLoss``: contrastive margin loss between feature differences and the change probability; 0-d.

    pred B×C×h×w (= |F_A − F_B|), tar B×1×h×w change probability (gradient flows into it), tar_true B×1×h×w
    (round(tar), or the label). Unchanged set: tar_true == 0, weight 1 − tar; changed set: tar_true == 1, weight tar.
    loss = ½Σ w_u·d² / n_u + ½Σ w_c·max(m − d, 0)² / n_c, divided by ``channel_divisor`` (the original's hard-coded
    128; ``None`` divides by the actual channel count C).
    """
    if pred.ndim != 4 or tar.shape != (pred.shape[0], 1, *pred.shape[2:]) or tar_true.shape != tar.shape:
        raise ValueError(
            f"bscc_loss: pred must be B×C×h×w and tar, tar_true B×1×h×w; got {tuple(pred.shape)}, "
            f"{tuple(tar.shape)}, {tuple(tar_true.shape)}"
        )
    unchanged = (1 - tar_true) == 1
    changed = tar_true == 1
    weight_u = (1 - tar) * unchanged
    weight_c = tar * changed
    n_u = weight_u.sum() + eps
    n_c = weight_c.sum() + eps
    loss = 0.5 * torch.sum(weight_u * pred.pow(2)) / n_u
    loss = loss + 0.5 * torch.sum(weight_c * torch.clamp(margin - pred, min=0.0).pow(2)) / n_c
    return loss / (channel_divisor if channel_divisor is not None else pred.shape[1])


def total_loss(
    outputs: dict[str, torch.Tensor],
    label_A: torch.Tensor,
    label_B: torch.Tensor,
    label_BCD: torch.Tensor,
    num_segclass: int = 9,
) -> dict[str, torch.Tensor]:
    """The per-batch training loss of ``main.py``: BCD + CE(A) + CE(B) + contrast + BSCC.

    ``outputs`` is the model's training-mode output dict (``contrast_loss`` and ``bscc_loss`` are already weighted).
    Returns every part and their sum under ``"loss"``.
    """
    parts = {
        "bcd": bcd_loss(outputs["BCD"], label_BCD),
        "seg_A": seg_ce(outputs["seg_A"], label_A, ignore_index=num_segclass),
        "seg_B": seg_ce(outputs["seg_B"], label_B, ignore_index=num_segclass),
    }
    if "contrast_loss" in outputs:
        parts["contrast"] = outputs["contrast_loss"].reshape(())
    parts["bscc"] = outputs["bscc_loss"].reshape(())
    parts["loss"] = sum(parts.values())
    return parts
