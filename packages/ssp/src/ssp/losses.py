"""Losses of SSP / KD-SSP as plain functions (tensors in, scalar out), with the original semantics.

Flows are inputs: ``flow`` is what RAFT returns for the stated pair (see :func:`ssp.model.raft.RAFT`), so the
functions are testable without RAFT; :func:`raft_flow` computes them with a frozen RAFT as the original does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssp.geometry import flow_warp

__all__ = [
    "consistency_loss",
    "consistent_teacher_logits",
    "cross_entropy_loss",
    "kd_loss",
    "kd_ssp_loss",
    "kl_div_soft_label",
    "occlusion_mask",
    "raft_flow",
    "ssp_loss",
]


def _check_same(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"{name_a} and {name_b} must be equal B×C×H×W, got {tuple(a.shape)} and {tuple(b.shape)}")


def _check_flow(flow: torch.Tensor, like: torch.Tensor, name: str = "flow") -> None:
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != like.shape[0] or flow.shape[-2:] != like.shape[-2:]:
        raise ValueError(
            f"{name}: expected {like.shape[0]}×2×{like.shape[-2]}×{like.shape[-1]}, got {tuple(flow.shape)}"
        )


@torch.no_grad()
def raft_flow(flow_model: nn.Module, image1: torch.Tensor, image2: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Full-resolution RAFT flow ``image1 -> image2`` (eval mode, no gradient), as every SSP call site uses it."""
    flow_model.eval()
    return flow_model(image1, image2, iters=iters, test_mode=True)[1]


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean cross-entropy over non-ignored pixels; ``logits`` ``B×n×H×W``, ``labels`` ``B×H×W`` int64."""
    if labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"labels: expected {(logits.shape[0], *logits.shape[2:])}, got {tuple(labels.shape)}")
    return F.cross_entropy(logits, labels.long(), ignore_index=ignore_index)


def occlusion_mask(frame: torch.Tensor, last_frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Photometric weight ``exp(-|sum_c (frame - warp(last_frame, flow))_c|)``, ``B×1×H×W`` (signed channel sum)."""
    _check_same("frame", frame, "last_frame", last_frame)
    _check_flow(flow, frame)
    return torch.exp(-torch.abs(torch.sum(frame - flow_warp(last_frame, flow), dim=1, keepdim=True)))


def consistency_loss(
    out: torch.Tensor, last_out: torch.Tensor, frame: torch.Tensor, last_frame: torch.Tensor, flow: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Temporal consistency loss ``mean(M * (out - warp(last_out, flow))^2)`` (original ``TempConstLoss``).

    ``flow`` = RAFT(frame, last_frame) (current -> previous), nearest warp with the original grid convention.
    Returns ``loss``, ``occlusion_mask`` and ``warped_last_out`` (gradients reach ``out`` and ``last_out``).
    """
    _check_same("out", out, "last_out", last_out)
    if frame.shape[-2:] != out.shape[-2:]:
        raise ValueError(f"frame {tuple(frame.shape)} and out {tuple(out.shape)} must share H×W (upsample first)")
    mask = occlusion_mask(frame, last_frame, flow)
    warped = flow_warp(last_out, flow)
    return {"loss": torch.mean(mask * (out - warped) ** 2), "occlusion_mask": mask, "warped_last_out": warped}


def ssp_loss(
    out: torch.Tensor,
    last_out: torch.Tensor,
    labels: torch.Tensor,
    frame: torch.Tensor,
    last_frame: torch.Tensor,
    flow: torch.Tensor,
    const_loss_lb: float = 0.5,
) -> dict[str, torch.Tensor]:
    """SSP objective: ``CE(out, labels) + lambda * L_tc``. ``const`` is the logged value ``lambda * L_tc``."""
    ce = cross_entropy_loss(out, labels)
    const = consistency_loss(out, last_out, frame, last_frame, flow)["loss"]
    return {"total": ce + const_loss_lb * const, "ce": ce, "const_loss": const, "const": const_loss_lb * const}


def kl_div_soft_label(
    logits: torch.Tensor, target: torch.Tensor, temperature: float = 2.0, softmax_on_target: bool = True
) -> torch.Tensor:
    """``KLDivLoss(batchmean)(log_softmax(x/T), softmax(y/T)) * T^2``: summed over C, H, W, divided by B.

    With ``softmax_on_target=False`` the target is taken as probabilities already.
    """
    _check_same("logits", logits, "target", target)
    target_prob = F.softmax(target / temperature, dim=1) if softmax_on_target else target
    loss = F.kl_div(F.log_softmax(logits / temperature, dim=1), target_prob, reduction="batchmean")
    return loss * temperature**2


def consistent_teacher_logits(
    teacher_logits: torch.Tensor,
    teacher_last_logits: torch.Tensor,
    flow_last2current: torch.Tensor,
    flow_current2last: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Flow-consistent teacher logits (original ``kd_get_consistent_logits``).

    ``flow_last2current`` = RAFT(frames, last_frames) (f_a), ``flow_current2last`` = RAFT(last_frames, frames) (f_b).
    ``occ = |f_a + f_b|^2 > 0.01 (|f_a|^2 + |f_b|^2) + 0.5`` (no warping of f_b); where not occluded a frame's logits
    are averaged with the neighbour's nearest-warped logits. Returns ``teacher_logits``, ``teacher_last_logits`` and
    the boolean ``occlusion_mask`` ``B×1×H×W``.
    """
    _check_same("teacher_logits", teacher_logits, "teacher_last_logits", teacher_last_logits)
    _check_flow(flow_last2current, teacher_logits, "flow_last2current")
    _check_flow(flow_current2last, teacher_logits, "flow_current2last")
    f_a, f_b = flow_last2current, flow_current2last
    sq = lambda f: torch.sum(f**2, dim=1, keepdim=True)  # noqa: E731
    occ = sq(f_a + f_b) > 0.01 * (sq(f_a) + sq(f_b)) + 0.5
    visible = (~occ).float()
    denominator = 2 * visible + occ.float()
    last = (teacher_last_logits + flow_warp(teacher_logits, f_b) * visible) / denominator
    current = (teacher_logits + flow_warp(teacher_last_logits, f_a) * visible) / denominator
    return {"teacher_logits": current, "teacher_last_logits": last, "occlusion_mask": occ}


def kd_loss(
    out: torch.Tensor,
    last_out: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_last_logits: torch.Tensor,
    temperature: float = 2.0,
    last_out_loss_lb: float = 1.0,
) -> dict[str, torch.Tensor]:
    """KD segmentation term: ``KL(out, y_t) + last_out_loss_lb * KL(last_out, y_{t-1})``."""
    kl_current = kl_div_soft_label(out, teacher_logits, temperature)
    kl_last = kl_div_soft_label(last_out, teacher_last_logits, temperature)
    return {"total": kl_current + last_out_loss_lb * kl_last, "kl_current": kl_current, "kl_last": kl_last}


def kd_ssp_loss(
    out: torch.Tensor,
    last_out: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_last_logits: torch.Tensor,
    frame: torch.Tensor,
    last_frame: torch.Tensor,
    flow_last2current: torch.Tensor,
    flow_current2last: torch.Tensor,
    const_loss_lb: float = 135000.0,
    last_out_loss_lb: float = 1.0,
    temperature: float = 2.0,
    kd_consistent_labels: bool = True,
    flow_consistency: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """KD-SSP objective: KL terms on (flow-consistent) teacher logits + ``lambda * L_tc``.

    ``flow_last2current`` / ``flow_current2last``: RAFT(frame, last_frame) / RAFT(last_frame, frame) with 15
    iterations (label consistency). ``flow_consistency``: RAFT(frame, last_frame) with 20 iterations for ``L_tc``
    as in the original; when None, ``flow_last2current`` is used.
    """
    if kd_consistent_labels:
        teacher = consistent_teacher_logits(teacher_logits, teacher_last_logits, flow_last2current, flow_current2last)
        teacher_logits, teacher_last_logits = teacher["teacher_logits"], teacher["teacher_last_logits"]
    kd = kd_loss(out, last_out, teacher_logits, teacher_last_logits, temperature, last_out_loss_lb)
    flow_tc = flow_last2current if flow_consistency is None else flow_consistency
    const = consistency_loss(out, last_out, frame, last_frame, flow_tc)["loss"]
    return {**kd, "total": kd["total"] + const_loss_lb * const, "kd_seg_loss": kd["total"], "const_loss": const}
