"""LightGlue building blocks used by SemaGlue: LayerNorms, rotary positional encoding, self/cross attention blocks.

Tensors: descriptors ``B×M×D`` (D = 256), heads ``B×h×M×d`` (h = 4, d = 64), boolean keypoint masks ``B×M``
(True = real keypoint, False = padding; ``None`` = all real).

Every module with an ``impl`` attribute has two exact implementations: ``"reference"`` (the authors' operations in
their order) and ``"fast"`` (the same function through fused kernels: ``F.layer_norm``, contiguous q/k/v so that
``scaled_dot_product_attention`` takes its flash kernel, the bidirectional cross attention as two SDPA calls).
:func:`set_impl` switches a whole model.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Impl = Literal["fast", "reference"]
IMPLS: tuple[str, ...] = ("fast", "reference")


def check_impl(impl: str) -> str:
    """``impl`` if it is ``"fast"`` or ``"reference"``, else ``ValueError`` naming it."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def set_impl(model: nn.Module, impl: str) -> nn.Module:
    """Set ``impl`` on every submodule that has one (``"fast"``: exact fast path, ``"reference"``: the authors'
    operations); returns ``model``."""
    check_impl(impl)
    for module in model.modules():
        if hasattr(module, "impl"):
            module.impl = impl
    return model


class WithBiasLayerNorm(nn.Module):
    """Restormer's "WithBias" LayerNorm over the last axis: ``(x - mean) / sqrt(var_biased + 1e-5) * w + b``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps
        self.impl: Impl = "fast"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fast":
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class TokenLayerNorm(nn.Module):
    """WithBias LayerNorm on tokens ``B×M×C`` (the authors' ``f_LayerNorm``; parameters under ``body.``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = WithBiasLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ChannelLayerNorm(nn.Module):
    """WithBias LayerNorm over the channels of a map ``B×C×H×W``, applied per pixel (parameters under ``body.``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = WithBiasLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def fusion_ffn(dim: int) -> nn.Sequential:
    """``cat[x, message]`` (2D) -> Linear 2D->2D, LayerNorm, GELU, Linear 2D->D (keys ``0, 1, 3``)."""
    return nn.Sequential(
        nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim, elementwise_affine=True), nn.GELU(), nn.Linear(2 * dim, dim)
    )


def normalize_keypoints(keypoints: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """LightGlue's normalisation: ``(kpts - size/2) / (max(size)/2)`` with ``size`` ``B×2`` read as ``(W, H)``.

    ``keypoints`` ``B×M×2`` in pixels ``(x, y)``. SemaGlue passes ``(H, W)`` here (see ``swap_image_size``).
    """
    size = size.to(keypoints)
    shift = size / 2
    scale = size.max(-1).values / 2
    return (keypoints - shift[:, None, :]) / scale[:, None, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Map each adjacent pair ``(a, b)`` of the last axis to ``(-b, a)``."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(encoding: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rotary embedding ``t * cos + rotate_half(t) * sin``; ``encoding`` is ``2×B×1×M×d`` (cos, sin)."""
    return t * encoding[0] + rotate_half(t) * encoding[1]


class LearnableFourierPositionalEncoding(nn.Module):
    """Keypoints ``B×M×2`` (normalised) -> rotary cos/sin ``2×B×1×M×head_dim`` through a learnt projection ``Wr``."""

    def __init__(self, in_dim: int, head_dim: int) -> None:
        super().__init__()
        self.Wr = nn.Linear(in_dim, head_dim // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.Wr(x)
        emb = torch.stack([torch.cos(projected), torch.sin(projected)], dim=0).unsqueeze(-3)
        return emb.repeat_interleave(2, dim=-1)


def key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``B×N`` keypoint mask -> SDPA boolean mask ``B×1×1×N`` over keys (padded keys are never attended)."""
    return None if mask is None else mask[:, None, None, :]


class SelfBlock(nn.Module):
    """Self-attention with rotary encoding + fusion FFN: ``x + ffn(cat[x, attn(x)])`` on ``B×M×D``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.Wqkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.ffn = fusion_ffn(dim)
        self.impl: Impl = "fast"

    def forward(self, x: torch.Tensor, encoding: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        qkv = self.Wqkv(x).unflatten(-1, (self.num_heads, -1, 3)).transpose(1, 2)
        if self.impl == "fast":  # q, k, v with unit last-dim stride: SDPA's flash kernel instead of its math path
            qkv = qkv.permute(4, 0, 1, 2, 3).contiguous()
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
        q, k = apply_rotary(encoding, q), apply_rotary(encoding, k)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(mask))
        message = self.out_proj(context.transpose(1, 2).flatten(start_dim=-2))
        return x + self.ffn(torch.cat([x, message], -1))


class CrossBlock(nn.Module):
    """Bidirectional cross-attention with a shared similarity matrix, applied to both images (shared weights)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_qk = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.ffn = fusion_ffn(dim)
        self.impl: Impl = "fast"

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        mask0: torch.Tensor | None = None,
        mask1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        qk0, qk1 = self._heads(self.to_qk(x0)), self._heads(self.to_qk(x1))
        v0, v1 = self._heads(self.to_v(x0)), self._heads(self.to_v(x1))
        if self.impl == "fast":  # softmax(sim) v and softmax(simᵀ) v as two flash-attention calls (no M×N matrix)
            m0 = F.scaled_dot_product_attention(qk0, qk1, v1, attn_mask=key_mask(mask1))
            m1 = F.scaled_dot_product_attention(qk1, qk0, v0, attn_mask=key_mask(mask0))
            m0 = self.to_out(m0.transpose(1, 2).flatten(start_dim=-2))
            m1 = self.to_out(m1.transpose(1, 2).flatten(start_dim=-2))
            return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))
        sim = torch.einsum("bhid,bhjd->bhij", qk0, qk1) * qk0.shape[-1] ** -0.5  # B×h×M×N
        sim01 = sim if mask1 is None else sim.masked_fill(~mask1[:, None, None, :], float("-inf"))
        sim10 = sim if mask0 is None else sim.masked_fill(~mask0[:, None, :, None], float("-inf"))
        m0 = torch.einsum("bhij,bhjd->bhid", sim01.softmax(-1), v1)
        m1 = torch.einsum("bhij,bhid->bhjd", sim10.softmax(-2), v0)
        m0 = self.to_out(m0.transpose(1, 2).flatten(start_dim=-2))
        m1 = self.to_out(m1.transpose(1, 2).flatten(start_dim=-2))
        return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))
