"""3-D window self-attention on cost volumes (original ``attention_block``, from Fast-ACVNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _padding_mask(
    height: int, width: int, pad_b: int, pad_r: int, block: tuple[int, int, int], like: torch.Tensor
) -> torch.Tensor:
    """Per-window padded-token flags ``(h·w)×(bh·bw)`` reproducing the original's slicing, dtype/device of ``like``.

    A token is "padded" if it lies in the last ``pad_b`` rows or the last ``pad_r`` columns. As in the original,
    a zero pad selects *all* rows/columns (``x[-0:]``), so when exactly one pad is 0 every token is flagged and
    the mask has no effect.
    """
    _, bh, bw = block
    flags = like.new_zeros(height, width)
    flags[height - pad_b if pad_b else 0 :, :] = 1.0
    flags[:, width - pad_r if pad_r else 0 :] = 1.0
    h, w = height // bh, width // bw
    return flags.view(h, bh, w, bw).transpose(1, 2).reshape(h * w, bh * bw)


class AttentionBlock(nn.Module):
    """Windowed multi-head self-attention over ``B×C×D×H×W`` (no residual), keys ``qkv_3d``, ``final1x1``.

    H and W are zero-padded (bottom/right) to multiples of the window; D must be divisible by the window depth.
    Windows of ``bd×bh×bw`` tokens attend internally; a final 1×1×1 conv mixes channels.
    """

    def __init__(self, channels_3d: int, num_heads: int = 16, block: tuple[int, int, int] = (4, 4, 4)) -> None:
        super().__init__()
        if channels_3d % num_heads:
            raise ValueError(f"AttentionBlock: {channels_3d} channels not divisible by {num_heads} heads")
        self.block = tuple(block)
        self.num_heads = num_heads
        self.scale = (channels_3d // num_heads) ** -0.5
        self.qkv_3d = nn.Linear(channels_3d, 3 * channels_3d, bias=True)
        self.final1x1 = nn.Conv3d(channels_3d, channels_3d, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, depth, height0, width0 = x.shape
        bd, bh, bw = self.block
        if depth % bd:
            raise ValueError(f"AttentionBlock: depth {depth} is not divisible by the window depth {bd}")
        pad_r, pad_b = (-width0) % bw, (-height0) % bh
        x = F.pad(x, (0, pad_r, 0, pad_b))
        height, width = height0 + pad_b, width0 + pad_r
        d, h, w = depth // bd, height // bh, width // bw
        heads, head_dim, tokens = self.num_heads, channels // self.num_heads, bd * bh * bw

        windows = x.view(batch, channels, d, bd, h, bh, w, bw).permute(0, 2, 4, 6, 3, 5, 7, 1)
        qkv = self.qkv_3d(windows).reshape(batch, d * h * w, tokens, 3, heads, head_dim).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # B × windows × heads × tokens × head_dim
        logits = (q @ k.transpose(-2, -1)) * self.scale
        if pad_r or pad_b:
            flags = _padding_mask(height, width, pad_b, pad_r, self.block, x)  # (h·w) × (bh·bw)
            flags = flags.repeat(d, bd)  # windows in (d, h, w) order, tokens in (bd, bh, bw) order
            differs = flags.unsqueeze(1) != flags.unsqueeze(2)
            logits = logits + (differs.to(x.dtype) * -1000.0).unsqueeze(1)
        out = torch.softmax(logits, dim=-1) @ v
        out = out.view(batch, d, h, w, heads, bd, bh, bw, head_dim).permute(0, 4, 8, 1, 5, 2, 6, 3, 7)
        out = out.reshape(batch, channels, depth, height, width)[:, :, :, :height0, :width0]
        return self.final1x1(out)
