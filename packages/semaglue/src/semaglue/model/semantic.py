"""SemaGlue's semantic modules: the global semantic feature processor, CDA and SAF.

Shapes: descriptors/semantic tokens ``B×M×256``, semantic map ``B×480×h×w`` (stride 8), keypoint mask ``B×M``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semaglue.model.layers import ChannelLayerNorm, TokenLayerNorm, fusion_ffn, key_mask


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

    def forward(self, S: torch.Tensor, R: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        k, v = self.kv(R).chunk(2, dim=1)
        q = resample_sequence(snake_flatten(self.q_dwconv(self.q(S))), mask, R.shape[-1])
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

    def forward(self, S: torch.Tensor, R: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
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

    def forward(self, desc: torch.Tensor, feature: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        Fn, Dn = self.s_fnorm1(feature), self.f_fnorm1(desc)
        q = self.Wq(Dn).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        kv = self.Wkv(self.proj(Fn)).unflatten(-1, (self.num_heads, -1, 2)).transpose(1, 2)
        context = F.scaled_dot_product_attention(q, kv[..., 0], kv[..., 1], attn_mask=key_mask(mask))
        message = self.out_proj(context.transpose(1, 2).flatten(start_dim=-2))
        return Dn + self.ffn(torch.cat([Dn, message], -1))
