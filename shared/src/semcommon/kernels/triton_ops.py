"""Triton kernels (forward and backward) behind :mod:`semcommon.kernels`; imported only when Triton is used.

Kernels accumulate in float32 and store in the input dtype. Under ``TRITON_INTERPRET=1`` (set before this module is
imported) they run on CPU tensors through Triton's interpreter, which is how the tests exercise them. They use only
Triton builtins and this module's own ``@triton.jit`` helpers, no library functions written with ``@triton.jit``
(``tl.zeros``, ``tl.sum``): those are built when ``triton`` is first imported, and would not run under an interpreter
switched on after that (as in a test session where another module imported ``triton`` first).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

_GWC_BLOCK_X = 64
_GWC_BLOCK_D = 16
_WARP_BLOCK_X = 64
_WARP_BLOCK_C = 16
_WINDOW_BLOCK_P = 32
_WINDOW_BLOCK_C = 32


def _on_device(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launch on ``tensor``'s GPU (Triton launches on the current one); nothing to do for CPU tensors."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def interpreted() -> bool:
    """Whether the kernels of this module were built by Triton's CPU interpreter."""
    return isinstance(_gwc_fwd_kernel, InterpretedFunction)


# ---------------------------------------------------------------------------------------------------------------------
# Group-wise correlation over a signed disparity range


@triton.jit
def _gwc_row_segment(group_channels, height, width, num_disp, BLOCK_X: tl.constexpr):
    """This program's columns ``xs`` (and which lie in the image), the plane size, and the offsets of its row in the
    (batch, group) input block and output volume (grid: x segments, rows, batch × groups)."""
    row = tl.program_id(1)
    group = tl.program_id(2).to(tl.int64)
    xs = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    plane = height * width
    return xs, xs < width, plane, group * group_channels * plane + row * width, group * num_disp * plane + row * width


@triton.jit
def _gwc_fwd_kernel(
    left_ptr,
    right_ptr,
    out_ptr,
    group_channels,
    height,
    width,
    num_disp,
    disp_min,
    scale,
    BLOCK_D: tl.constexpr,
    BLOCK_X: tl.constexpr,
):
    """One row segment of one (batch, group): ``out[j, y, x] = scale · Σ_c l[c, y, x] · r[c, y, x - d_j]``."""
    xs, x_ok, plane, in_base, out_base = _gwc_row_segment(group_channels, height, width, num_disp, BLOCK_X)
    for d0 in range(0, num_disp, BLOCK_D):
        js = d0 + tl.arange(0, BLOCK_D)
        src = xs[None, :] - (disp_min + js)[:, None]
        store_ok = (js < num_disp)[:, None] & x_ok[None, :]
        ok = store_ok & (src >= 0) & (src < width)
        acc = tl.full((BLOCK_D, BLOCK_X), 0.0, tl.float32)
        for c in range(group_channels):
            lv = tl.load(left_ptr + in_base + c * plane + xs, mask=x_ok, other=0.0).to(tl.float32)
            rv = tl.load(right_ptr + in_base + c * plane + src, mask=ok, other=0.0).to(tl.float32)
            acc += lv[None, :] * rv
        tl.store(out_ptr + out_base + js[:, None] * plane + xs[None, :], acc * scale, mask=store_ok)


@triton.jit
def _gwc_bwd_kernel(
    left_ptr,
    right_ptr,
    grad_out_ptr,
    grad_left_ptr,
    grad_right_ptr,
    group_channels,
    height,
    width,
    num_disp,
    disp_min,
    scale,
    BLOCK_X: tl.constexpr,
):
    """Gradients of :func:`_gwc_fwd_kernel` as gathers (no atomics): left reads ``x - d``, right reads ``x + d``."""
    xs, x_ok, plane, in_base, out_base = _gwc_row_segment(group_channels, height, width, num_disp, BLOCK_X)
    for c in range(group_channels):
        grad_l = tl.full((BLOCK_X,), 0.0, tl.float32)
        grad_r = tl.full((BLOCK_X,), 0.0, tl.float32)
        for j in range(num_disp):
            src = xs - (disp_min + j)
            src_ok = x_ok & (src >= 0) & (src < width)
            go = tl.load(grad_out_ptr + out_base + j * plane + xs, mask=src_ok, other=0.0).to(tl.float32)
            grad_l += go * tl.load(right_ptr + in_base + c * plane + src, mask=src_ok, other=0.0).to(tl.float32)
            dst = xs + (disp_min + j)
            dst_ok = x_ok & (dst >= 0) & (dst < width)
            go = tl.load(grad_out_ptr + out_base + j * plane + dst, mask=dst_ok, other=0.0).to(tl.float32)
            grad_r += go * tl.load(left_ptr + in_base + c * plane + dst, mask=dst_ok, other=0.0).to(tl.float32)
        tl.store(grad_left_ptr + in_base + c * plane + xs, grad_l * scale, mask=x_ok)
        tl.store(grad_right_ptr + in_base + c * plane + xs, grad_r * scale, mask=x_ok)


def _gwc_grid(left: torch.Tensor) -> tuple[int, int, int]:
    batch, groups, _, height, width = left.shape
    return triton.cdiv(width, _GWC_BLOCK_X), height, batch * groups


class _GroupCorrelation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, left: torch.Tensor, right: torch.Tensor, disp_min: int, disp_max: int) -> torch.Tensor:
        left, right = left.contiguous(), right.contiguous()
        batch, groups, per_group, height, width = left.shape
        num_disp = disp_max - disp_min
        out = left.new_empty(batch, groups, num_disp, height, width)
        block_d = min(_GWC_BLOCK_D, triton.next_power_of_2(num_disp))
        _gwc_fwd_kernel[_gwc_grid(left)](
            left, right, out, per_group, height, width, num_disp, disp_min, 1.0 / per_group, block_d, _GWC_BLOCK_X
        )
        ctx.save_for_backward(left, right)
        ctx.disp_min = disp_min
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        left, right = ctx.saved_tensors
        _, _, per_group, height, width = left.shape
        grad_out = grad_out.contiguous()
        num_disp = grad_out.shape[2]
        grad_left, grad_right = torch.empty_like(left), torch.empty_like(right)
        _gwc_bwd_kernel[_gwc_grid(left)](
            left,
            right,
            grad_out,
            grad_left,
            grad_right,
            per_group,
            height,
            width,
            num_disp,
            ctx.disp_min,
            1.0 / per_group,
            BLOCK_X=_GWC_BLOCK_X,
        )
        return grad_left, grad_right, None, None


def group_correlation(left: torch.Tensor, right: torch.Tensor, disp_min: int, disp_max: int) -> torch.Tensor:
    """``B×G×C'×H×W`` pair -> ``B×G×D×H×W``: mean over ``C'`` of ``left[..., x] · right[..., x - d]`` (0 outside)."""
    with _on_device(left):
        return _GroupCorrelation.apply(left, right, disp_min, disp_max)


# ---------------------------------------------------------------------------------------------------------------------
# Warp at per-pixel fractional disparities / concatenation volume


@triton.jit
def _warp_taps(disp_ptr, height, width, BLOCK_X: tl.constexpr):
    """This program's (batch, hypothesis) ``sample``, row and columns ``xs`` (and which lie in the image), and for
    the samples at ``x - disparity``: the left tap column, its two bilinear weights and in-image masks."""
    row = tl.program_id(1)
    sample = tl.program_id(2).to(tl.int64)
    xs = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    x_ok = xs < width
    disp = tl.load(disp_ptr + sample * height * width + row * width + xs, mask=x_ok, other=0.0).to(tl.float32)
    src = xs.to(tl.float32) - disp
    x0f = tl.floor(src)
    w1 = src - x0f
    x0 = tl.minimum(tl.maximum(x0f, -2.0), width + 1.0).to(tl.int32)
    ok0 = x_ok & (x0 >= 0) & (x0 < width)
    ok1 = x_ok & (x0 + 1 >= 0) & (x0 + 1 < width)
    return sample, row, xs, x_ok, x0, 1.0 - w1, w1, ok0, ok1


@triton.jit
def _warp_fwd_kernel(
    right_ptr,
    disp_ptr,
    left_ptr,
    out_ptr,
    channels,
    num_disp,
    height,
    width,
    out_channels,
    out_offset,
    WITH_LEFT: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_X: tl.constexpr,
):
    """One row segment of one (batch, sample): ``out[c0 + c, k, y, x] = bilinear(right[c, y], x - disp[k, y, x])``.

    With ``WITH_LEFT`` the left features are also copied to channels ``[0, C)`` (concatenation volume).
    """
    sample, row, xs, x_ok, x0, w0, w1, ok0, ok1 = _warp_taps(disp_ptr, height, width, BLOCK_X)
    batch = sample // num_disp
    k = sample % num_disp
    plane = height * width
    for c0 in range(0, channels, BLOCK_C):
        cs = c0 + tl.arange(0, BLOCK_C)
        c_ok = (cs < channels)[:, None]
        in_row = ((batch * channels + cs) * plane + row * width)[:, None]
        r0 = tl.load(right_ptr + in_row + x0[None, :], mask=c_ok & ok0[None, :], other=0.0).to(tl.float32)
        r1 = tl.load(right_ptr + in_row + x0[None, :] + 1, mask=c_ok & ok1[None, :], other=0.0).to(tl.float32)
        out_row = (((batch * out_channels + out_offset + cs) * num_disp + k) * plane + row * width)[:, None]
        store_ok = c_ok & x_ok[None, :]
        tl.store(out_ptr + out_row + xs[None, :], w0[None, :] * r0 + w1[None, :] * r1, mask=store_ok)
        if WITH_LEFT:
            lv = tl.load(left_ptr + in_row + xs[None, :], mask=store_ok, other=0.0)
            left_row = (((batch * out_channels + cs) * num_disp + k) * plane + row * width)[:, None]
            tl.store(out_ptr + left_row + xs[None, :], lv, mask=store_ok)


@triton.jit
def _warp_bwd_kernel(
    right_ptr,
    disp_ptr,
    grad_out_ptr,
    grad_right_ptr,
    grad_disp_ptr,
    channels,
    num_disp,
    height,
    width,
    out_channels,
    out_offset,
    BLOCK_X: tl.constexpr,
):
    """Gradients of :func:`_warp_fwd_kernel`: right by atomic scatter (float32), disparity summed over channels."""
    sample, row, xs, x_ok, x0, w0, w1, ok0, ok1 = _warp_taps(disp_ptr, height, width, BLOCK_X)
    batch = sample // num_disp
    k = sample % num_disp
    plane = height * width
    grad_disp = tl.full((BLOCK_X,), 0.0, tl.float32)
    for c in range(channels):
        in_row = (batch * channels + c) * plane + row * width
        out_row = ((batch * out_channels + out_offset + c) * num_disp + k) * plane + row * width
        go = tl.load(grad_out_ptr + out_row + xs, mask=x_ok, other=0.0).to(tl.float32)
        r0 = tl.load(right_ptr + in_row + x0, mask=ok0, other=0.0).to(tl.float32)
        r1 = tl.load(right_ptr + in_row + x0 + 1, mask=ok1, other=0.0).to(tl.float32)
        grad_disp += go * (r0 - r1)
        tl.atomic_add(grad_right_ptr + in_row + x0, go * w0, mask=ok0)
        tl.atomic_add(grad_right_ptr + in_row + x0 + 1, go * w1, mask=ok1)
    tl.store(grad_disp_ptr + sample * plane + row * width + xs, grad_disp, mask=x_ok)


def _warp_grid(right: torch.Tensor, num_disp: int) -> tuple[int, int, int]:
    batch, _, height, width = right.shape
    return triton.cdiv(width, _WARP_BLOCK_X), height, batch * num_disp


class _Warp(torch.autograd.Function):
    """Warped right features, alone (``B×C×D×H×W``) or after the left ones (``B×2C×D×H×W``, ``with_left``)."""

    @staticmethod
    def forward(
        ctx, left: torch.Tensor | None, right: torch.Tensor, disparity: torch.Tensor, with_left: bool
    ) -> torch.Tensor:
        right, disparity = right.contiguous(), disparity.contiguous()
        batch, channels, height, width = right.shape
        num_disp = disparity.shape[1]
        out_channels = 2 * channels if with_left else channels
        out = right.new_empty(batch, out_channels, num_disp, height, width)
        _warp_fwd_kernel[_warp_grid(right, num_disp)](
            right,
            disparity,
            left.contiguous() if with_left else right,
            out,
            channels,
            num_disp,
            height,
            width,
            out_channels,
            out_channels - channels,
            WITH_LEFT=with_left,
            BLOCK_C=_WARP_BLOCK_C,
            BLOCK_X=_WARP_BLOCK_X,
        )
        ctx.save_for_backward(right, disparity)
        ctx.with_left = with_left
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, None]:
        right, disparity = ctx.saved_tensors
        _, channels, height, width = right.shape
        num_disp = disparity.shape[1]
        grad_out = grad_out.contiguous()
        out_channels = grad_out.shape[1]
        grad_right = torch.zeros(right.shape, device=right.device, dtype=torch.float32)
        grad_disp = torch.empty(disparity.shape, device=right.device, dtype=torch.float32)
        _warp_bwd_kernel[_warp_grid(right, num_disp)](
            right,
            disparity,
            grad_out,
            grad_right,
            grad_disp,
            channels,
            num_disp,
            height,
            width,
            out_channels,
            out_channels - channels,
            BLOCK_X=_WARP_BLOCK_X,
        )
        grad_left = grad_out[:, :channels].sum(dim=2) if ctx.with_left else None
        return grad_left, grad_right.to(right.dtype), grad_disp.to(disparity.dtype), None


def warp_by_disparity(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """``right`` ``B×C×H×W`` sampled at ``x - disparity`` (``B×D×H×W``) -> ``B×C×D×H×W`` (bilinear, zero padding)."""
    with _on_device(right):
        return _Warp.apply(None, right, disparity, False)


def concat_volume(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """``B×2C×D×H×W``: left features repeated over the ``D`` samples, then the warped right features."""
    with _on_device(right):
        return _Warp.apply(left, right, disparity, True)


# ---------------------------------------------------------------------------------------------------------------------
# Windowed correlation (RAFT lookup without the all-pairs volume)


@triton.jit
def _window_taps(corner_ptr, batch, ps, p_ok, num_pix, level_h, level_w, SIDE: tl.constexpr, BLOCK_K: tl.constexpr):
    """Flat ``fmap2`` positions ``BLOCK_P×BLOCK_K`` of each pixel's ``SIDE×SIDE`` window (x-major) and their mask."""
    ks = tl.arange(0, BLOCK_K)
    left = tl.load(corner_ptr + batch * 2 * num_pix + ps, mask=p_ok, other=0)
    top = tl.load(corner_ptr + (batch * 2 + 1) * num_pix + ps, mask=p_ok, other=0)
    qx = left[:, None] + (ks // SIDE)[None, :]
    qy = top[:, None] + (ks % SIDE)[None, :]
    ok = p_ok[:, None] & (ks < SIDE * SIDE)[None, :] & (qx >= 0) & (qx < level_w) & (qy >= 0) & (qy < level_h)
    return ks, qy * level_w + qx, ok


@triton.jit
def _window_fwd_kernel(
    f1_ptr,
    f2_ptr,
    corner_ptr,
    out_ptr,
    channels,
    num_pix,
    level_h,
    level_w,
    scale,
    SIDE: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """``out[k, p] = scale · <f1[:, p], f2[:, q_k(p)]>`` for the ``SIDE²`` window positions ``q_k`` (0 outside)."""
    batch = tl.program_id(1).to(tl.int64)
    ps = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = ps < num_pix
    ks, q, ok = _window_taps(corner_ptr, batch, ps, p_ok, num_pix, level_h, level_w, SIDE, BLOCK_K)
    level_pix = level_h * level_w
    acc = tl.full((BLOCK_P, BLOCK_K), 0.0, tl.float32)
    for c in range(channels):
        a = tl.load(f1_ptr + (batch * channels + c) * num_pix + ps, mask=p_ok, other=0.0).to(tl.float32)
        v = tl.load(f2_ptr + (batch * channels + c) * level_pix + q, mask=ok, other=0.0).to(tl.float32)
        acc += a[:, None] * v
    out_off = (batch * SIDE * SIDE + ks[None, :]) * num_pix + ps[:, None]
    tl.store(out_ptr + out_off, acc * scale, mask=p_ok[:, None] & (ks < SIDE * SIDE)[None, :])


@triton.jit
def _window_bwd_kernel(
    f1_ptr,
    f2_ptr,
    corner_ptr,
    grad_out_ptr,
    grad_f1_ptr,
    grad_f2_ptr,
    channels,
    num_pix,
    level_h,
    level_w,
    scale,
    SIDE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Gradients of :func:`_window_fwd_kernel` over ``BLOCK_C×BLOCK_P`` (channel, pixel) tiles, one window position
    at a time: ``f1`` accumulated from gathers, ``f2`` by atomic scatter (float32)."""
    batch = tl.program_id(1).to(tl.int64)
    ps = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = ps < num_pix
    left = tl.load(corner_ptr + batch * 2 * num_pix + ps, mask=p_ok, other=0)
    top = tl.load(corner_ptr + (batch * 2 + 1) * num_pix + ps, mask=p_ok, other=0)
    level_pix = level_h * level_w
    for c0 in range(0, channels, BLOCK_C):
        cs = c0 + tl.arange(0, BLOCK_C)
        c_ok = (cs < channels)[:, None]
        f1_off = (batch * channels + cs)[:, None] * num_pix + ps[None, :]
        a = tl.load(f1_ptr + f1_off, mask=c_ok & p_ok[None, :], other=0.0).to(tl.float32)
        f2_rows = (batch * channels + cs)[:, None] * level_pix
        acc = tl.full((BLOCK_C, BLOCK_P), 0.0, tl.float32)
        for k in range(SIDE * SIDE):
            qx = left + k // SIDE
            qy = top + k % SIDE
            ok = c_ok & (p_ok & (qx >= 0) & (qx < level_w) & (qy >= 0) & (qy < level_h))[None, :]
            q = (qy * level_w + qx)[None, :]
            go = tl.load(grad_out_ptr + (batch * SIDE * SIDE + k) * num_pix + ps, mask=p_ok, other=0.0)
            go = (go.to(tl.float32) * scale)[None, :]
            acc += go * tl.load(f2_ptr + f2_rows + q, mask=ok, other=0.0).to(tl.float32)
            tl.atomic_add(grad_f2_ptr + f2_rows + q, go * a, mask=ok)
        tl.store(grad_f1_ptr + f1_off, acc, mask=c_ok & p_ok[None, :])


def _window_launch(fmap1: torch.Tensor, side: int) -> tuple[tuple[int, int], dict[str, int]]:
    batch, _, height, width = fmap1.shape
    grid = (triton.cdiv(height * width, _WINDOW_BLOCK_P), batch)
    return grid, {"SIDE": side, "BLOCK_P": _WINDOW_BLOCK_P, "BLOCK_K": triton.next_power_of_2(side * side)}


class _WindowCorrelation(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, fmap1: torch.Tensor, fmap2: torch.Tensor, corner: torch.Tensor, side: int, scale: float
    ) -> torch.Tensor:
        fmap1, fmap2, corner = fmap1.contiguous(), fmap2.contiguous(), corner.contiguous()
        batch, channels, height, width = fmap1.shape
        out = fmap1.new_empty(batch, side, side, height, width)
        grid, meta = _window_launch(fmap1, side)
        _window_fwd_kernel[grid](
            fmap1, fmap2, corner, out, channels, height * width, fmap2.shape[2], fmap2.shape[3], scale, **meta
        )
        ctx.save_for_backward(fmap1, fmap2, corner)
        ctx.side, ctx.scale = side, scale
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        fmap1, fmap2, corner = ctx.saved_tensors
        _, channels, height, width = fmap1.shape
        grad_f1 = torch.empty(fmap1.shape, device=fmap1.device, dtype=torch.float32)
        grad_f2 = torch.zeros(fmap2.shape, device=fmap2.device, dtype=torch.float32)
        _window_bwd_kernel[(triton.cdiv(height * width, _WINDOW_BLOCK_P), fmap1.shape[0])](
            fmap1,
            fmap2,
            corner,
            grad_out.contiguous(),
            grad_f1,
            grad_f2,
            channels,
            height * width,
            fmap2.shape[2],
            fmap2.shape[3],
            ctx.scale,
            SIDE=ctx.side,
            BLOCK_C=_WINDOW_BLOCK_C,
            BLOCK_P=_WINDOW_BLOCK_P,
        )
        return grad_f1.to(fmap1.dtype), grad_f2.to(fmap2.dtype), None, None, None


def window_correlation(
    fmap1: torch.Tensor, fmap2: torch.Tensor, corner: torch.Tensor, side: int, scale: float
) -> torch.Tensor:
    """``B×side×side×H×W``: ``scale · <fmap1(p), fmap2(corner(p) + (a, b))>`` for ``a`` (x), ``b`` (y) in the window.

    ``fmap1`` ``B×C×H×W``, ``fmap2`` ``B×C×h×w``, ``corner`` ``B×2×H×W`` int32 ``(x, y)`` of each window's top-left
    position in ``fmap2``; positions outside ``fmap2`` give 0.
    """
    with _on_device(fmap1):
        return _WindowCorrelation.apply(fmap1, fmap2, corner, side, scale)
