"""SemaGlue's semantic modules: the global semantic feature processor, CDA and SAF.

Shapes: descriptors/semantic tokens ``B×M×256``, semantic map ``B×480×h×w`` (stride 8), keypoint mask ``B×M``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semaglue.model.layers import ChannelLayerNorm, Impl, TokenLayerNorm, fusion_ffn, key_mask


def pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A kernel-1 ``Conv1d`` on ``B×C×M`` as one matrix product (what the convolution computes, without its
    im2col path)."""
    return F.linear(x.transpose(1, 2), conv.weight[:, :, 0], conv.bias).transpose(1, 2)


def resample_indices(
    length: int, size: int, mask: torch.Tensor | None, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where :func:`resample_sequence` reads: for every output position ``B×length`` the two source indices
    ``i0, i1`` into a sequence of ``size``, the weight ``λ`` of ``i1`` and whether the position is real (linear
    interpolation, align_corners=False, each masked row resampled to its own keypoint count)."""
    if mask is None:
        k = torch.arange(length, device=device, dtype=torch.float64).expand(batch, length)
        count = torch.full((batch, 1), float(length), dtype=torch.float64, device=device)
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    else:
        k = (mask.cumsum(1) - 1).to(torch.float64)
        count = mask.sum(1, keepdim=True).to(torch.float64).clamp_min(1)
        valid = mask
    src = ((k + 0.5) * (size / count) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp(max=size - 1)
    i1 = (i0 + 1).clamp(max=size - 1)
    return i0, i1, (src - i0).clamp(0, 1), valid


def snake_conv3x3_at(x: torch.Tensor, conv: nn.Conv2d, mask: torch.Tensor | None, length: int) -> torch.Tensor:
    """``resample_sequence(snake_flatten(conv(x)), mask, length)`` for a 3×3, padding-1 ``conv``, computing the
    convolution only at the ``≤ 2·length`` snake positions the linear resampling reads (3×3 patches gathered from
    the zero-padded map, one matrix product). ``x`` ``B×C×h×w`` -> ``B×C_out×length``."""
    b, c, h, w = x.shape
    i0, i1, lam, valid = resample_indices(length, h * w, mask, b, x.device)
    pos = torch.cat([i0, i1], 1)  # B×2K snake positions
    row = pos // w
    col = torch.where(row % 2 == 1, w - 1 - pos % w, pos % w)
    cells = (h + 2) * (w + 2)
    offsets = [(dy, dx) for dy in range(3) for dx in range(3)]
    flat = torch.stack([(row + dy) * (w + 2) + col + dx for dy, dx in offsets], -1)  # B×2K×9 in the padded map
    flat = flat + cells * torch.arange(b, device=x.device)[:, None, None]
    pixels = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(b * cells, c)  # one row of channels per cell
    patches = pixels[flat.flatten()].view(b, 2 * length, 9 * c)  # B×2K×(9·C), (ky, kx, c) order
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, 9 * c)
    out = F.linear(patches, weight, conv.bias).transpose(1, 2)  # B×C_out×2K
    x0, x1 = out.split(length, dim=2)
    lam = lam.to(out.dtype)[:, None]
    return torch.where(valid[:, None], x0 * (1 - lam) + x1 * lam, out.new_zeros(()))


def channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    num_heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transposed ("channel") attention of Restormer: ``B×C×M`` inputs, heads are contiguous channel groups.

    q and k are L2-normalised along the token axis, logits ``q kᵀ · temperature[h]`` are ``(C/h)×(C/h)`` per head,
    softmax over the key channels; output ``B×C×M``. Padded tokens (``mask`` False) are excluded from the sums.
    """
    if mask is not None:
        keep = mask[:, None, :].to(q.dtype)
        q, k = q * keep, k * keep
    b, c, m = q.shape
    q, k, v = (t.reshape(b, num_heads, c // num_heads, m) for t in (q, k, v))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1) * temperature).softmax(dim=-1)
    return (attn @ v).reshape(b, c, m)


def snake_flatten(x: torch.Tensor) -> torch.Tensor:
    """``B×C×h×w`` -> ``B×C×(h·w)`` in boustrophedon order: even rows left-to-right, odd rows right-to-left."""
    x = x.clone()
    x[:, :, 1::2] = x[:, :, 1::2].flip(-1)
    return x.flatten(2)


def resample_sequence(seq: torch.Tensor, mask: torch.Tensor | None, length: int) -> torch.Tensor:
    """Linearly resample ``B×C×L`` to ``B×C×length`` (align_corners=False).

    With a mask ``B×length`` each sequence is resampled to its own number of real keypoints and written to the
    masked positions in order; padded positions are zero.
    """
    if mask is None:
        return F.interpolate(seq, size=length, mode="linear", align_corners=False)
    out = seq.new_zeros(seq.shape[0], seq.shape[1], length)
    for i, valid in enumerate(mask):
        count = int(valid.sum())
        if count:
            out[i][:, valid] = F.interpolate(seq[i : i + 1], size=count, mode="linear", align_corners=False)[0]
    return out


class SemanticQueryAttention(nn.Module):
    """The processor's attention (authors' ``Attention1``): queries from the semantic map, keys/values from the
    descriptors, channel attention. ``S`` ``B×C×h×w``, ``R`` ``B×C×M`` -> ``B×C×M``.

    ``q_dwconv`` is a dense 3x3 convolution despite its name (as in the authors' code)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.kv = nn.Conv1d(dim, 2 * dim, kernel_size=1)
        self.q = nn.Conv2d(dim, dim, kernel_size=1)
        self.q_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.project_out = nn.Conv1d(dim, dim, kernel_size=1)
        self.impl: Impl = "fast"

    def forward(self, S: torch.Tensor, R: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = R.shape[-1]
        if self.impl == "fast":
            k, v = pointwise(self.kv, R).chunk(2, dim=1)
            if 2 * length < S.shape[-2] * S.shape[-1]:  # fewer keypoints than map cells: convolve only where read
                q = snake_conv3x3_at(self.q(S), self.q_dwconv, mask, length)
            else:
                q = resample_sequence(snake_flatten(self.q_dwconv(self.q(S))), mask, length)
            return pointwise(self.project_out, channel_attention(q, k, v, self.temperature, self.num_heads, mask))
        k, v = self.kv(R).chunk(2, dim=1)
        q = resample_sequence(snake_flatten(self.q_dwconv(self.q(S))), mask, length)
        return self.project_out(channel_attention(q, k, v, self.temperature, self.num_heads, mask))


class SegFeatureProcessor(nn.Module):
    """Global semantic feature ``G`` (``B×M×256``) from the semantic map ``B×480×h×w`` and the input descriptors.

    The map is NOT sampled at the keypoints: it is snake-flattened and resampled to the number of keypoints
    (authors' behaviour, needed for their checkpoint)."""

    def __init__(self, segment_dim: int, dim: int, num_heads: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(segment_dim, dim, kernel_size=1)
        self.norm1 = ChannelLayerNorm(dim)
        self.fnorm1 = TokenLayerNorm(dim)
        self.attn = SemanticQueryAttention(dim, num_heads)

    def forward(self, feature_map: torch.Tensor, desc: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        S = self.norm1(self.conv1(feature_map))
        R = self.fnorm1(desc).transpose(1, 2)
        return self.attn(S, R, mask).transpose(1, 2)


class CDAAttention(nn.Module):
    """CDA's channel attention: queries from the semantic tokens, keys/values from the descriptors (``B×C×M``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.kv = nn.Conv1d(dim, 2 * dim, kernel_size=1)
        self.q = nn.Conv1d(dim, dim, kernel_size=1)
        self.project_out = nn.Conv1d(dim, dim, kernel_size=1)
        self.impl: Impl = "fast"

    def forward(self, S: torch.Tensor, R: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.impl == "fast":
            k, v = pointwise(self.kv, R).chunk(2, dim=1)
            q = pointwise(self.q, S)
            return pointwise(self.project_out, channel_attention(q, k, v, self.temperature, self.num_heads, mask))
        k, v = self.kv(R).chunk(2, dim=1)
        return self.project_out(channel_attention(self.q(S), k, v, self.temperature, self.num_heads, mask))


class CDA(nn.Module):
    """Cross-Domain Alignment: aligns the global semantic feature with the current descriptors (no residual).

    ``desc`` (R) and ``feature`` (S, the global feature G) ``B×M×256`` -> aligned semantic feature ``B×M×256``."""

    def __init__(self, dim: int = 256, num_heads: int = 4) -> None:
        super().__init__()
        self.S_norm1 = TokenLayerNorm(dim)
        self.R_fnorm1 = TokenLayerNorm(dim)
        self.attn = CDAAttention(dim, num_heads)

    def forward(self, desc: torch.Tensor, feature: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        S = self.S_norm1(feature).transpose(1, 2)
        R = self.R_fnorm1(desc).transpose(1, 2)
        return self.attn(S, R, mask).transpose(1, 2)


class SAF(nn.Module):
    """Semantic-Aware Fusion: token cross-attention (queries = descriptors, keys/values = semantic tokens).

    Returns ``Dn + ffn(cat[Dn, message])`` where ``Dn`` is the LayerNorm-ed descriptor (the authors' residual
    placement). ``desc``, ``feature`` ``B×M×256`` -> ``B×M×256``."""

    def __init__(self, dim: int = 256, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.s_fnorm1 = TokenLayerNorm(dim)
        self.f_fnorm1 = TokenLayerNorm(dim)
        self.proj = nn.Linear(dim, dim)
        self.Wq = nn.Linear(dim, dim)
        self.Wkv = nn.Linear(dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.ffn = fusion_ffn(dim)
        self.impl: Impl = "fast"

    def forward(self, desc: torch.Tensor, feature: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        Fn, Dn = self.s_fnorm1(feature), self.f_fnorm1(desc)
        q = self.Wq(Dn).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        kv = self.Wkv(self.proj(Fn)).unflatten(-1, (self.num_heads, -1, 2)).transpose(1, 2)
        if self.impl == "fast":  # unit-stride k/v: SDPA's flash kernel instead of its math path
            kv = kv.permute(4, 0, 1, 2, 3).contiguous()
            k, v = kv[0], kv[1]
        else:
            k, v = kv[..., 0], kv[..., 1]
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(mask))
        message = self.out_proj(context.transpose(1, 2).flatten(start_dim=-2))
        return Dn + self.ffn(torch.cat([Dn, message], -1))
