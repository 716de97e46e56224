"""Hiera trunk in its SAM2 variant (windowed attention, query pooling, windowed absolute position embedding).

All block computations are channels-last (``B×H×W×C``); :class:`Hiera` returns the four stage outputs as
``B×C×H×W``, fine -> coarse (strides 4, 8, 16, 32). Parameter names equal SAM2's ``image_encoder.trunk``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssp.config import HieraConfig

__all__ = ["Hiera", "MultiScaleAttention", "MultiScaleBlock", "PatchEmbed"]


def pool_channels_last(x: torch.Tensor, pool: nn.Module | None) -> torch.Tensor:
    """Apply a 2-D pooling module to a ``B×H×W×C`` tensor (no-op when ``pool`` is None)."""
    if pool is None:
        return x
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``B×H×W×C`` -> ``(B·nh·nw)×window×window×C`` after zero padding H, W to multiples of ``window``."""
    batch, height, width, channels = x.shape
    pad_h, pad_w = (window - height % window) % window, (window - width % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = height + pad_h, width + pad_w
    x = x.view(batch, hp // window, window, wp // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`, cropping the padding: -> ``B×H×W×C``."""
    hp, wp = padded
    batch = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(batch, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)
    return x[:, : size[0], : size[1]].contiguous()


class PatchEmbed(nn.Module):
    """``proj``: Conv 7×7 stride 4 padding 3, ``B×3×H×W`` -> ``B×H/4×W/4×C``."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """``layers.0`` Linear(d, h) -> GELU (erf) -> ``layers.1`` Linear(h, d)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


class MultiScaleAttention(nn.Module):
    """Multi-head attention over the tokens of a window, with optional 2×2 max pooling of the queries.

    ``qkv`` output channels are ordered (q | k | v), each split into contiguous heads.
    Input ``N×h×w×dim`` -> output ``N×h'×w'×dim_out`` (h' = h/2 when pooling queries).
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None) -> None:
        super().__init__()
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)
        if self.q_pool is not None:
            q = pool_channels_last(q.reshape(batch, height, width, -1), self.q_pool)
            height, width = q.shape[1:3]
            q = q.reshape(batch, height * width, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(batch, height, width, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block: (pooled, projected) shortcut + windowed attention, then an MLP residual.

    Input ``B×H×W×dim`` -> ``B×H'×W'×dim_out`` (H' = H/2 in query-pooling blocks).
    """

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None = None, window_size: int = 0
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_pool=self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = Mlp(dim_out, 4 * dim_out)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = pool_channels_last(self.proj(x), self.pool)
        window = self.window_size
        height, width = x.shape[1:3]
        padded = (height, width)
        if window > 0:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if self.q_stride:
            window = self.window_size // self.q_stride[0]
            height, width = shortcut.shape[1:3]
            if window > 0:
                padded = (height + (window - height % window) % window, width + (window - width % window) % window)
        if self.window_size > 0:
            x = window_unpartition(x, window, padded, (height, width))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """SAM2 Hiera trunk. ``B×3×H×W`` (H, W multiples of 32) -> 4 maps ``B×C_i×H/2^(i+2)×W/2^(i+2)``."""

    def __init__(self, config: HieraConfig | None = None) -> None:
        super().__init__()
        cfg = config or HieraConfig()
        self.config = cfg
        self.stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: cfg.q_pool]
        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, cfg.window_spec[0], cfg.window_spec[0]))
        self.blocks = nn.ModuleList()
        self.impl = "fast"
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 0
        for index in range(sum(cfg.stages)):
            # the window is read before the stage counter advances: a stage's first block keeps the previous window
            window = 0 if index in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if index - 1 in self.stage_ends:
                dim_out, heads, stage = int(dim * cfg.dim_mul), int(heads * cfg.head_mul), stage + 1
            q_stride = cfg.q_stride if index in q_pool_blocks else None
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, q_stride=q_stride, window_size=window))
            dim = dim_out

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """Bicubic-resized background embedding plus the tiled window embedding, ``1×h×w×C``.

        With ``impl`` "fast" and autograd off, the embedding is kept for the next call of the same size (frames of
        a video) until either parameter changes (its version counter) — the same values, computed once.
        """
        if self.impl == "reference" or torch.is_grad_enabled():
            return self._position_embedding(height, width)
        key = (height, width, self.pos_embed.device, self.pos_embed.dtype, self.pos_embed._version,
               self.pos_embed_window._version, torch.is_inference_mode_enabled())  # fmt: skip
        if self._pos_cache is None or self._pos_cache[0] != key:
            self._pos_cache = (key, self._position_embedding(height, width))
        return self._pos_cache[1]

    def _position_embedding(self, height: int, width: int) -> torch.Tensor:
        pos = F.interpolate(self.pos_embed, size=(height, width), mode="bicubic", align_corners=False)
        window = self.pos_embed_window
        tiles = [a // b for a, b in zip(pos.shape, window.shape, strict=True)]
        return (pos + window.tile(tiles)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"Hiera: expected images B×3×H×W, got {tuple(x.shape)}")
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"Hiera: image height and width must be multiples of 32, got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x)
        x = x + self.position_embedding(*x.shape[1:3])
        outputs = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
