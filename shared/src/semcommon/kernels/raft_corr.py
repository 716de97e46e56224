"""RAFT correlation: the all-pairs pyramid and its windowed lookup, and the lookup without the all-pairs volume.

:func:`corr_lookup_windowed` gives :func:`corr_lookup` ``(`` :func:`corr_pyramid` ``)`` from features alone
(``alt_cuda_corr`` style): average-pooling the correlation over ``fmap2``'s positions equals correlating with the
average-pooled ``fmap2`` (linearity), so level ``l`` only needs ``<fmap1(p), pool_l(fmap2)(q)>`` at the
``(2r+2)²`` integer positions around each lookup point. Memory O(H·W·r²) instead of O(H²·W²).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semcommon.kernels.backend import select_backend, triton_ops

_CHUNK_ELEMENTS = 1 << 23  # gathered fmap2 values per chunk of the PyTorch windowed correlation (32 MiB in float32)


def corr_pyramid(fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4) -> list[torch.Tensor]:
    """All-pairs correlation ``<f1(p), f2(q)> / sqrt(C)`` and its average-pooled pyramid.

    Args:
        fmap1, fmap2: ``B×C×H×W`` feature maps.
    Returns:
        ``num_levels`` tensors of shape ``(B·H·W)×1×(H/2^l)×(W/2^l)``: for every pixel of ``fmap1`` its
        correlation with all of ``fmap2``, pooled by 2 per level.
    """
    if fmap1.shape != fmap2.shape or fmap1.dim() != 4:
        raise ValueError(
            f"corr_pyramid: expected two equal B×C×H×W maps, got {tuple(fmap1.shape)}, {tuple(fmap2.shape)}"
        )
    batch, channels, height, width = fmap1.shape
    corr = torch.matmul(fmap1.flatten(2).transpose(1, 2), fmap2.flatten(2)) / channels**0.5
    level = corr.reshape(batch * height * width, 1, height, width)
    pyramid = [level]
    for _ in range(num_levels - 1):
        level = F.avg_pool2d(level, 2, stride=2)
        pyramid.append(level)
    return pyramid


def corr_lookup(pyramid: list[torch.Tensor], coords: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Sample a ``(2r+1)²`` window around ``coords / 2^l`` in every pyramid level.

    Args:
        pyramid: output of :func:`corr_pyramid`.
        coords: ``B×2×H×W`` pixel coordinates ``(x, y)`` in ``fmap2`` for every pixel of ``fmap1``.
    Returns:
        ``B×(L·(2r+1)²)×H×W``. Within a level, channel ``i·(2r+1) + j`` holds the offset ``(dx, dy) = (i - r, j - r)``
        (RAFT's ordering). Bilinear sampling with zero padding, ``align_corners=True``.
    """
    batch, _, height, width = coords.shape
    side = 2 * radius + 1
    offsets = torch.linspace(-radius, radius, side, device=coords.device, dtype=coords.dtype)
    delta = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)  # side×side×2, [..., 0] = x offset
    centres = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
    samples = []
    for level_index, corr in enumerate(pyramid):
        points = centres / 2**level_index + delta.view(1, side, side, 2)
        level_h, level_w = corr.shape[-2:]
        grid = torch.stack((2 * points[..., 0] / (level_w - 1) - 1, 2 * points[..., 1] / (level_h - 1) - 1), dim=-1)
        sampled = F.grid_sample(corr, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        samples.append(sampled.view(batch, height, width, side * side))
    return torch.cat(samples, dim=-1).permute(0, 3, 1, 2).contiguous()


def feature_pyramid(fmap2: torch.Tensor, num_levels: int = 4) -> list[torch.Tensor]:
    """``fmap2`` (``B×C×H×W``) and its average-pooled copies, pooled by 2 per level (input of
    :func:`corr_lookup_windowed`); ``num_levels`` tensors ``B×C×(H/2^l)×(W/2^l)``."""
    levels = [fmap2]
    for _ in range(num_levels - 1):
        levels.append(F.avg_pool2d(levels[-1], 2, stride=2))
    return levels


def _row_table(fmap2: torch.Tensor) -> torch.Tensor:
    """``B×C×h×w`` -> ``(B·(h·w + 1))×C``: one row per position and batch; each batch's extra last row (zero) stands
    for positions outside ``fmap2``."""
    return F.pad(fmap2.flatten(2), (0, 1)).transpose(1, 2).reshape(-1, fmap2.shape[1])


def _window_rows(fmap2: torch.Tensor, corner: torch.Tensor, side: int, start: int, stop: int) -> torch.Tensor:
    """Rows ``B×P×side²`` of :func:`_row_table` for the windows of pixels ``[start, stop)`` (``corner`` ``B×2×HW``)."""
    batch = fmap2.shape[0]
    height, width = fmap2.shape[-2:]
    offsets = torch.arange(side, device=fmap2.device)
    qx = corner[:, 0, start:stop, None, None] + offsets.view(side, 1)  # B×P×side(x)×side(y)
    qy = corner[:, 1, start:stop, None, None] + offsets.view(1, side)
    inside = (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
    rows = torch.where(inside, qy * width + qx, height * width)
    first = torch.arange(batch, device=fmap2.device).view(batch, 1, 1, 1) * (height * width + 1)
    return (rows + first).flatten(2)


def _gather_rows(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table`` ``N×C``, ``rows`` ``B×P×K`` -> ``B×P×K×C``."""
    return table.index_select(0, rows.flatten()).view(*rows.shape, table.shape[1])


def _chunks(fmap1: torch.Tensor, side: int) -> list[tuple[int, int]]:
    pixels = fmap1.shape[2] * fmap1.shape[3]
    step = max(1, _CHUNK_ELEMENTS // (fmap1.shape[0] * side * side * fmap1.shape[1]))
    return [(start, min(start + step, pixels)) for start in range(0, pixels, step)]


class _WindowCorrelationTorch(torch.autograd.Function):
    """PyTorch reference of ``triton_ops.window_correlation``, chunked over pixels in forward and backward."""

    @staticmethod
    def forward(
        ctx, fmap1: torch.Tensor, fmap2: torch.Tensor, corner: torch.Tensor, side: int, scale: float
    ) -> torch.Tensor:
        batch, _, height, width = fmap1.shape
        corner = corner.flatten(2)
        flat1 = fmap1.flatten(2).transpose(1, 2).contiguous()  # B×HW×C
        out = fmap1.new_empty(batch, height * width, side * side)
        table = _row_table(fmap2)
        for start, stop in _chunks(fmap1, side):
            taps = _gather_rows(table, _window_rows(fmap2, corner, side, start, stop))  # B×P×K×C
            out[:, start:stop] = torch.matmul(taps, flat1[:, start:stop, :, None]).squeeze(-1) * scale
        ctx.save_for_backward(fmap1, fmap2, corner)
        ctx.side, ctx.scale = side, scale
        return out.transpose(1, 2).reshape(batch, side, side, height, width)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        fmap1, fmap2, corner = ctx.saved_tensors
        side, scale = ctx.side, ctx.scale
        batch, channels = fmap1.shape[:2]
        flat1 = fmap1.flatten(2).transpose(1, 2).contiguous()
        grad = grad_out.flatten(3).flatten(1, 2).transpose(1, 2) * scale  # B×HW×side²
        grad_f1 = torch.empty_like(flat1)
        table = _row_table(fmap2)
        grad_table = torch.zeros_like(table)
        for start, stop in _chunks(fmap1, side):
            rows = _window_rows(fmap2, corner, side, start, stop)
            taps = _gather_rows(table, rows)
            grad_f1[:, start:stop] = torch.matmul(grad[:, start:stop, None, :], taps).squeeze(-2)
            contrib = grad[:, start:stop, :, None] * flat1[:, start:stop, None, :]  # B×P×K×C
            grad_table.index_add_(0, rows.flatten(), contrib.reshape(-1, channels))
        grad_f2 = grad_table.view(batch, -1, channels)[:, :-1].transpose(1, 2).reshape(fmap2.shape)
        return grad_f1.transpose(1, 2).reshape(fmap1.shape), grad_f2, None, None, None


def corr_lookup_windowed(
    fmap1: torch.Tensor, fmap2_pyramid: list[torch.Tensor], coords: torch.Tensor, radius: int = 4
) -> torch.Tensor:
    """:func:`corr_lookup` of :func:`corr_pyramid` without the all-pairs volume (same values, same channel order).

    Args:
        fmap1: ``B×C×H×W`` features of the first image.
        fmap2_pyramid: :func:`feature_pyramid` of the second image's ``B×C×H×W`` features (``L`` levels).
        coords: ``B×2×H×W`` pixel coordinates ``(x, y)`` in ``fmap2`` for every pixel of ``fmap1``.
        radius: window radius ``r``.
    Returns:
        ``B×(L·(2r+1)²)×H×W``; gradients flow to ``fmap1``, every pyramid level and ``coords``. Triton kernel on
        CUDA tensors (see :mod:`semcommon.kernels.backend`), chunked PyTorch otherwise; both keep memory O(H·W·r²).
    """
    if fmap1.dim() != 4 or coords.dim() != 4 or coords.shape[1] != 2:
        raise ValueError(
            f"corr_lookup_windowed: expected B×C×H×W features and B×2×H×W coords, "
            f"got {tuple(fmap1.shape)} and {tuple(coords.shape)}"
        )
    batch, channels = fmap1.shape[:2]
    if coords.shape[0] != batch or coords.shape[2:] != fmap1.shape[2:]:
        raise ValueError(f"corr_lookup_windowed: coords {tuple(coords.shape)} do not match fmap1 {tuple(fmap1.shape)}")
    for level_index, level in enumerate(fmap2_pyramid):
        if level.dim() != 4 or level.shape[:2] != fmap1.shape[:2]:
            raise ValueError(
                f"corr_lookup_windowed: pyramid level {level_index} {tuple(level.shape)} does not match fmap1 "
                f"{tuple(fmap1.shape)} in batch and channels"
            )
    side = 2 * radius + 2
    scale = 1.0 / channels**0.5
    window_correlation = (
        triton_ops().window_correlation
        if select_backend(fmap1, coords, *fmap2_pyramid) == "triton"
        else _WindowCorrelationTorch.apply
    )
    samples = []
    for level_index, level in enumerate(fmap2_pyramid):
        centres = coords / 2**level_index
        base = centres.detach().floor()
        frac = (centres - base).unsqueeze(2)  # B×2×1×H×W, differentiable in coords
        # Window top-left corners, clamped so that windows wholly outside stay outside (and fit in int32).
        corner_x = (base[:, 0] - radius).clamp(-side, level.shape[-1])
        corner_y = (base[:, 1] - radius).clamp(-side, level.shape[-2])
        corner = torch.stack((corner_x, corner_y), dim=1).to(torch.int32)
        window = window_correlation(fmap1, level, corner, side, scale)  # B×side(x)×side(y)×H×W
        fx, fy = frac[:, :1], frac[:, 1:]
        window = window[:, :-1] * (1 - fx) + window[:, 1:] * fx
        window = window[:, :, :-1] * (1 - fy) + window[:, :, 1:] * fy
        samples.append(window.flatten(1, 2))
    return torch.cat(samples, dim=1)
