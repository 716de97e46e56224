"""Stereo cost volumes over a signed disparity range: PyTorch reference implementations and Triton dispatch.

Convention: a positive disparity ``d`` pairs left column ``x`` with right column ``x - d``; disparity plane ``j``
of a volume built over ``[disp_min, disp_max)`` holds ``d = disp_min + j``. Pairs whose right column falls
outside the image give 0. Each function runs the Triton kernel of :mod:`semcommon.kernels.triton_ops` where
:func:`semcommon.kernels.backend.select_backend` says so (CUDA tensors, ``SEMVISION_KERNELS``), the reference otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semcommon.kernels.backend import select_backend, triton_ops


def _check_pair(left: torch.Tensor, right: torch.Tensor, what: str) -> None:
    if left.dim() != 4 or right.dim() != 4:
        raise ValueError(f"{what}: expected B×C×H×W feature maps, got {tuple(left.shape)} and {tuple(right.shape)}")
    if left.shape != right.shape:
        raise ValueError(
            f"{what}: left and right features differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
        )


def _check_disparity(right: torch.Tensor, disparity: torch.Tensor) -> None:
    if right.dim() != 4 or disparity.dim() != 4:
        raise ValueError(
            f"warp_by_disparity: expected B×C×H×W features and B×D×H×W disparities, "
            f"got {tuple(right.shape)} and {tuple(disparity.shape)}"
        )
    if disparity.shape[0] != right.shape[0] or disparity.shape[2:] != right.shape[2:]:
        raise ValueError(
            f"warp_by_disparity: disparity {tuple(disparity.shape)} does not match features {tuple(right.shape)}"
        )


def shifted_windows(right: torch.Tensor, disp_min: int, disp_max: int) -> torch.Tensor:
    """Every integer shift of ``right`` as one zero-copy view ``…×D×H×W``, in *descending* disparity order.

    ``right`` is ``…×H×W``; window ``k`` holds ``right[..., x - (disp_max - 1 - k)]`` (0 outside the image). The
    padded copy is the only allocation: the D windows overlap in memory (strides ``…, 1, row, 1``), so a consumer
    reads each element D times without materialising a ``D``-times larger tensor.
    """
    num_disp = disp_max - disp_min
    # Padded column p holds right column p - (disp_max - 1); window k at column x reads p = x + k.
    padded = F.pad(right, (disp_max - 1, -disp_min)).contiguous()
    *lead, height, _ = padded.shape
    strides = padded.stride()
    return padded.as_strided(
        (*lead, num_disp, height, right.shape[-1]), (*strides[:-2], 1, strides[-2], 1), padded.storage_offset()
    )


def gwc_volume_norm(
    left: torch.Tensor, right: torch.Tensor, disp_min: int, disp_max: int, num_groups: int, eps: float = 1e-5
) -> torch.Tensor:
    """Normalised group-wise correlation volume ``B×G×D×H×W`` with ``D = disp_max - disp_min``.

    The ``C`` channels are split into ``G`` groups of ``C/G`` consecutive channels; within each group every feature
    vector is divided by (its L2 norm + ``eps``), and the volume holds the mean over the group of the elementwise
    product of left column ``x`` and right column ``x - d``.
    """
    _check_pair(left, right, "gwc_volume_norm")
    batch, channels, height, width = left.shape
    if channels % num_groups:
        raise ValueError(f"gwc_volume_norm: {channels} channels are not divisible into {num_groups} groups")
    if disp_max <= disp_min:
        raise ValueError(f"gwc_volume_norm: empty disparity range [{disp_min}, {disp_max})")
    per_group = channels // num_groups

    def normalise(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(batch, num_groups, per_group, height, width)
        return x / (x.norm(dim=2, keepdim=True) + eps)

    if select_backend(left, right) == "triton":
        return triton_ops().group_correlation(normalise(left), normalise(right), disp_min, disp_max)
    # Products against the overlapping strided windows (no copy of the D shifted maps), then the D axis is put
    # back in ascending disparity order on the G-times smaller result.
    windows = shifted_windows(normalise(right), disp_min, disp_max)  # B×G×C/G×D×H×W
    return (normalise(left).unsqueeze(3) * windows).mean(dim=2).flip(2)


def warp_by_disparity(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Sample ``right`` (``B×C×H×W``) at column ``x - disparity`` for each of ``D`` samples -> ``B×C×D×H×W``.

    ``disparity`` is ``B×D×H×W`` (fractional, in pixels of this resolution). Bilinear sampling, zero padding,
    ``align_corners=True`` coordinates (pixel centres at ``-1 .. 1``).
    """
    _check_disparity(right, disparity)
    batch, channels, height, width = right.shape
    if select_backend(right, disparity) == "triton":
        return triton_ops().warp_by_disparity(right, disparity)
    num_disp = disparity.shape[1]
    rows = torch.arange(height, device=right.device, dtype=right.dtype).view(1, 1, height, 1)
    cols = torch.arange(width, device=right.device, dtype=right.dtype).view(1, 1, 1, width)
    x = (cols - disparity) / ((width - 1) / 2) - 1
    y = (rows / ((height - 1) / 2) - 1).expand_as(x)
    grid = torch.stack((x, y), dim=-1).reshape(batch, num_disp * height, width, 2)
    warped = F.grid_sample(right, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped.view(batch, channels, num_disp, height, width)


def concat_volume(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Concatenation volume ``B×2C×D×H×W``: left features repeated over the D samples, then warped right features."""
    _check_pair(left, right, "concat_volume")
    if select_backend(left, right, disparity) == "triton":
        _check_disparity(right, disparity)
        return triton_ops().concat_volume(left, right, disparity)
    warped = warp_by_disparity(right, disparity)
    return torch.cat((left.unsqueeze(2).expand_as(warped), warped), dim=1)
