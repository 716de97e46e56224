"""Block self-attention (BSA): the parameter-free channel self-attention the authors apply to every encoder skip."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BlockSelfAttention", "block_self_attention", "channel_self_attention"]


def channel_self_attention(x: torch.Tensor) -> torch.Tensor:
    """Channel self-attention with residual, B×C×H×W → B×C×H×W.

    E = X·Xᵀ over the flattened map (B×C×C, float32 ``bmm``), A = softmax(rowmax(E) − E), output A·X + X.
    """
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    energy = torch.bmm(flat, flat.transpose(1, 2))
    energy = energy.amax(dim=-1, keepdim=True) - energy
    attention = torch.softmax(energy, dim=-1)
    return torch.bmm(attention, flat).reshape(b, c, h, w) + x


def block_self_attention(x: torch.Tensor, num_blocks: int = 1) -> torch.Tensor:
    """Split B×C×H×W into ``num_blocks`` width blocks, attend within each, concatenate back.

    ``num_blocks=1`` (whole map) is what the authors' code computes: it ignores its block argument.
    """
    if x.dim() != 4:
        raise ValueError(f"x: expected a B×C×H×W tensor, got shape {tuple(x.shape)}")
    if num_blocks < 1 or num_blocks > x.shape[-1]:
        raise ValueError(f"num_blocks: must be in 1..{x.shape[-1]} (the width), got {num_blocks}")
    if num_blocks == 1:
        return channel_self_attention(x)
    blocks = torch.tensor_split(x, num_blocks, dim=-1)
    return torch.cat([channel_self_attention(block) for block in blocks], dim=-1)


class BlockSelfAttention(nn.Module):
    """Module form of :func:`block_self_attention` (no parameters; the original's ``FeatureFusion``)."""

    def __init__(self, num_blocks: int = 1) -> None:
        super().__init__()
        self.num_blocks = num_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return block_self_attention(x, self.num_blocks)

    def extra_repr(self) -> str:
        return f"num_blocks={self.num_blocks}"
