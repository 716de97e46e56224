"""Weight-free cost-volume operations: regression, variance, propagation, top-k selection, warping.

Disparity planes: plane ``j`` of a ``D``-plane volume holds disparity ``disp_min + j`` (units of its resolution).
The cost volumes themselves come from :mod:`semcommon.kernels` (``gwc_volume_norm``, ``concat_volume``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semcommon.kernels import warp_by_disparity

# Neighbour offsets (dy, dx) gathered by the propagation, in the original's channel order.
PROPAGATION_OFFSETS: tuple[tuple[int, int], ...] = ((-1, -1), (0, 0), (1, 1), (1, -1), (-1, 1))


def disparity_values(num: int, disp_min: int, like: torch.Tensor) -> torch.Tensor:
    """``disp_min + j`` for ``j < num`` shaped ``1×num×1×1`` on ``like``'s device/dtype."""
    return (torch.arange(num, device=like.device, dtype=like.dtype) + disp_min).view(1, num, 1, 1)


def disparity_regression(prob: torch.Tensor, disp_min: int) -> torch.Tensor:
    """Soft-argmin: ``B×D×H×W`` probabilities -> ``B×H×W`` expected disparity, values ``disp_min + j``."""
    return (prob * disparity_values(prob.shape[1], disp_min, prob)).sum(dim=1)


def disparity_variance(prob: torch.Tensor, disp_min: int, disparity: torch.Tensor) -> torch.Tensor:
    """Variance of the disparity distribution around ``disparity`` (``B×1×H×W``) -> ``B×1×H×W``."""
    values = disparity_values(prob.shape[1], disp_min, prob)
    return (prob * (values - disparity) ** 2).sum(dim=1, keepdim=True)


def _neighbours(padded: torch.Tensor, height: int, width: int) -> list[torch.Tensor]:
    return [padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in PROPAGATION_OFFSETS]


def propagation(disparity: torch.Tensor) -> torch.Tensor:
    """``B×1×H×W`` -> ``B×5×H×W``: values at the 5 neighbour offsets, replicate-padded (original ``Propagation``)."""
    if disparity.dim() != 4 or disparity.shape[1] != 1:
        raise ValueError(f"propagation: expected a B×1×H×W map, got {tuple(disparity.shape)}")
    height, width = disparity.shape[-2:]
    padded = F.pad(disparity, (1, 1, 1, 1), mode="replicate")
    return torch.cat(_neighbours(padded, height, width), dim=1)


def propagation_prob(volume: torch.Tensor) -> torch.Tensor:
    """``B×1×D×H×W`` -> ``B×5×D×H×W``: :func:`propagation` applied to every plane (``Propagation_prob``)."""
    if volume.dim() != 5 or volume.shape[1] != 1:
        raise ValueError(f"propagation_prob: expected a B×1×D×H×W volume, got {tuple(volume.shape)}")
    height, width = volume.shape[-2:]
    padded = F.pad(volume, (1, 1, 1, 1, 0, 0), mode="replicate")
    return torch.cat(_neighbours(padded, height, width), dim=1)


def spatial_transformer_grid(
    left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Original ``SpatialTransformer_grid``: ``(right warped at x - d, left repeated)``, both ``B×C×D×H×W``."""
    warped = warp_by_disparity(right, disparity)
    return warped, left.unsqueeze(2).expand_as(warped)


def select_topk(prob: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest planes of ``prob`` (``B×1×D×H×W``), re-sorted ascending -> ``B×1×k×H×W``.

    A descending ``sort`` (not ``topk``) as in the original, for the same tie order.
    """
    order = prob.sort(dim=2, descending=True)[1]
    return order[:, :, :k].sort(dim=2)[0]


def regression_topk(cost: torch.Tensor, disparity_samples: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` best of ``B×N×H×W`` costs, softmax them and average their samples -> ``B×1×H×W``."""
    if cost.shape != disparity_samples.shape:
        raise ValueError(
            f"regression_topk: cost {tuple(cost.shape)} and samples {tuple(disparity_samples.shape)} differ"
        )
    index = cost.sort(dim=1, descending=True)[1][:, :k]
    prob = torch.softmax(torch.gather(cost, 1, index), dim=1)
    return (torch.gather(disparity_samples, 1, index) * prob).sum(dim=1, keepdim=True)
