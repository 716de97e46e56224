"""Stereo cost volumes over a signed disparity range (PyTorch reference implementations).

Convention: a positive disparity ``d`` pairs left column ``x`` with right column ``x - d``; disparity plane ``j``
of a volume built over ``[disp_min, disp_max)`` holds ``d = disp_min + j``. Pairs whose right column falls
outside the image give 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pair(left: torch.Tensor, right: torch.Tensor, what: str) -> None:
    if left.dim() != 4 or right.dim() != 4:
        raise ValueError(f"{what}: expected B×C×H×W feature maps, got {tuple(left.shape)} and {tuple(right.shape)}")
    if left.shape != right.shape:
        raise ValueError(
            f"{what}: left and right features differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
        )


def shifted_right(right: torch.Tensor, disp_min: int, disp_max: int) -> torch.Tensor:
    """Right features shifted by every integer disparity: ``B×C×D×H×W``, plane j = ``right[..., x - (disp_min + j)]``.

    Built with one pad and one ``unfold`` (no loop over disparities); out-of-image columns are 0.
    """
    width = right.shape[-1]
    num_disp = disp_max - disp_min
    # Padded column p holds right column p - pad_left; window start x reads p = x + k for k in [0, D).
    pad_left = disp_max - 1
    pad_right = num_disp - 1 - pad_left
    padded = F.pad(right, (max(pad_left, 0), max(pad_right, 0)))
    if pad_left < 0:
        padded = padded[..., -pad_left:]
    if pad_right < 0:
        padded = padded[..., : padded.shape[-1] + pad_right]
    windows = padded.unfold(-1, num_disp, 1)[..., :width, :]  # B×C×H×W×D, window k -> d = disp_max - 1 - k
    return windows.flip(-1).permute(0, 1, 4, 2, 3)


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

    left_n = normalise(left)
    right_n = normalise(right).reshape(batch, channels, height, width)
    shifted = shifted_right(right_n, disp_min, disp_max)
    shifted = shifted.reshape(batch, num_groups, per_group, disp_max - disp_min, height, width)
    return (left_n.unsqueeze(3) * shifted).mean(dim=2)


def warp_by_disparity(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Sample ``right`` (``B×C×H×W``) at column ``x - disparity`` for each of ``D`` samples -> ``B×C×D×H×W``.

    ``disparity`` is ``B×D×H×W`` (fractional, in pixels of this resolution). Bilinear sampling, zero padding,
    ``align_corners=True`` coordinates (pixel centres at ``-1 .. 1``).
    """
    if right.dim() != 4 or disparity.dim() != 4:
        raise ValueError(
            f"warp_by_disparity: expected B×C×H×W features and B×D×H×W disparities, "
            f"got {tuple(right.shape)} and {tuple(disparity.shape)}"
        )
    batch, channels, height, width = right.shape
    if disparity.shape[0] != batch or disparity.shape[2:] != right.shape[2:]:
        raise ValueError(
            f"warp_by_disparity: disparity {tuple(disparity.shape)} does not match features {tuple(right.shape)}"
        )
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
    warped = warp_by_disparity(right, disparity)
    return torch.cat((left.unsqueeze(2).expand_as(warped), warped), dim=1)
