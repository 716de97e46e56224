"""Training losses. **Inferred, not released**: the authors publish no training code; the per-layer assignment
heads and token-confidence heads indicate glue-factory's LightGlue recipe, reproduced here from its description.

Log assignments are ``B×(M+1)×(N+1)`` (last row/column = unmatched); ground truth ``gt_matches0`` ``B×M`` and
``gt_matches1`` ``B×N`` hold the matched index, ``-1`` for unmatched and ``-2`` (or any value < -1) for ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gt_assignment(gt_matches0: torch.Tensor, gt_matches1: torch.Tensor) -> torch.Tensor:
    """Boolean ``B×M×N`` matrix of ground-truth matches (from ``gt_matches0``, checked against ``gt_matches1``)."""
    b, m = gt_matches0.shape
    n = gt_matches1.shape[1]
    out = torch.zeros(b, m, n, dtype=torch.bool, device=gt_matches0.device)
    rows, cols = torch.nonzero(gt_matches0 >= 0, as_tuple=True)
    out[rows, cols, gt_matches0[rows, cols]] = True
    if (gt_matches1 >= 0).sum() != out.sum():
        raise ValueError("gt_matches0 and gt_matches1 disagree on the number of matches")
    return out


def nll_assignment_loss(
    log_assignment: torch.Tensor, gt_matches0: torch.Tensor, gt_matches1: torch.Tensor, balancing: float = 0.5
) -> torch.Tensor:
    """Balanced negative log-likelihood per pair (``B``): positives = GT matches, negatives = GT-unmatched keypoints
    scored against the dustbin; ``balancing * pos + (1 - balancing) * neg``."""
    b, m1, n1 = log_assignment.shape
    if gt_matches0.shape != (b, m1 - 1) or gt_matches1.shape != (b, n1 - 1):
        raise ValueError(
            f"gt_matches0/1 must be {(b, m1 - 1)} and {(b, n1 - 1)} for log_assignment {tuple(log_assignment.shape)}, "
            f"got {tuple(gt_matches0.shape)} and {tuple(gt_matches1.shape)}"
        )
    positive = gt_assignment(gt_matches0, gt_matches1)
    neg0, neg1 = gt_matches0 == -1, gt_matches1 == -1
    num_pos = positive.sum((1, 2)).clamp(min=1).to(log_assignment.dtype)
    num_neg = (neg0.sum(1) + neg1.sum(1)).clamp(min=1).to(log_assignment.dtype)
    zero = log_assignment.new_zeros(())  # where(), not a product: padded (masked) entries are -inf
    nll_pos = -torch.where(positive, log_assignment[:, :-1, :-1], zero).sum((1, 2)) / num_pos
    nll_neg = (
        -(
            torch.where(neg0, log_assignment[:, :-1, -1], zero).sum(1)
            + torch.where(neg1, log_assignment[:, -1, :-1], zero).sum(1)
        )
        / num_neg
    )
    return balancing * nll_pos + (1 - balancing) * nll_neg


def token_confidence_loss(
    confidence0: torch.Tensor,
    confidence1: torch.Tensor,
    layer_matches0: torch.Tensor,
    layer_matches1: torch.Tensor,
    final_matches0: torch.Tensor,
    final_matches1: torch.Tensor,
) -> torch.Tensor:
    """BCE between a layer's token confidences (``B×M``/``B×N`` in (0, 1)) and whether that layer's prediction
    equals the final layer's, averaged over both images (scalar)."""
    target0 = (layer_matches0 == final_matches0).to(confidence0.dtype)
    target1 = (layer_matches1 == final_matches1).to(confidence1.dtype)
    loss0 = F.binary_cross_entropy(confidence0, target0)
    loss1 = F.binary_cross_entropy(confidence1, target1)
    return (loss0 + loss1) / 2


def semaglue_loss(layer_scores: torch.Tensor, gt_matches0: torch.Tensor, gt_matches1: torch.Tensor) -> torch.Tensor:
    """Mean over layers and pairs of :func:`nll_assignment_loss`; ``layer_scores`` ``L×B×(M+1)×(N+1)`` as returned
    by ``SemaGlue(...)(data, all_layers=True)["layer_scores"]``."""
    if layer_scores.ndim != 4:
        raise ValueError(f"layer_scores must be L×B×(M+1)×(N+1), got {tuple(layer_scores.shape)}")
    return torch.stack([nll_assignment_loss(s, gt_matches0, gt_matches1) for s in layer_scores]).mean()


def layer_argmax(log_assignment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per keypoint the best column/row of a ``B×(M+1)×(N+1)`` log assignment, dustbin included (``B×M``, ``B×N``);
    the token-confidence target compares these between a layer and the last one."""
    return log_assignment[:, :-1, :].argmax(-1), log_assignment[:, :, :-1].argmax(-2)


def deep_supervision_loss(
    pred: dict[str, torch.Tensor],
    gt_matches0: torch.Tensor,
    gt_matches1: torch.Tensor,
    gamma: float = 1.0,
    balancing: float = 0.5,
    confidence_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """glue-factory's LightGlue objective on ``SemaGlue(..., all_layers=True)`` output.

    NLL of the last layer (weight 1) plus every earlier layer ``i`` of ``L`` with weight ``gamma ** (L - 1 - i)``
    (``i + 1`` when ``gamma <= 0``), divided by the sum of weights and averaged over the batch; plus
    ``confidence_weight`` × the token-confidence BCE summed over the first ``L - 1`` layers (targets: that layer's
    argmax equals the last layer's). Returns the total and a dict of logged terms.
    """
    scores = pred["layer_scores"]
    num_layers = scores.shape[0]
    last = nll_assignment_loss(scores[-1], gt_matches0, gt_matches1, balancing).mean()
    total, sum_weights = last, 1.0
    confidence = scores.new_zeros(())
    final0, final1 = layer_argmax(scores[-1].detach())
    for i in range(num_layers - 1):
        weight = gamma ** (num_layers - 1 - i) if gamma > 0 else float(i + 1)
        total = total + weight * nll_assignment_loss(scores[i], gt_matches0, gt_matches1, balancing).mean()
        sum_weights += weight
        now0, now1 = layer_argmax(scores[i].detach())
        confidence = confidence + token_confidence_loss(
            pred["token_confidence0"][i], pred["token_confidence1"][i], now0, now1, final0, final1
        )
    nll = total / sum_weights
    return nll + confidence_weight * confidence, {
        "nll": nll.detach(),
        "nll_last": last.detach(),
        "confidence": confidence.detach(),
    }
