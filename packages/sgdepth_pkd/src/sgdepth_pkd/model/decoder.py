"""Partial decoder (shared head + per-task tails) and the multi-resolution depth / segmentation heads.

The decoder carries a 5-slot tuple initialised to (l4, l3, l2, l1, l0) and runs 10 steps ``step_0..step_9``:
even steps are "pre-conv" blocks, odd steps "up-skip" blocks (×2 nearest upsampling, concatenation of a skip).
After all steps the slots hold decoder features at 1/16, 1/8, 1/4, 1/2 and 1/1 of the input resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NUM_DECODER_STEPS",
    "ConvBlock",
    "DecoderStep",
    "MultiResDepth",
    "MultiResSeg",
    "PartialDecoder",
    "decoder_plan",
]

NUM_DECODER_STEPS = 10
NUM_SLOTS = 5


@dataclass(frozen=True)
class DecoderStep:
    """One decoder step: read slot ``src`` (optionally upsample and append slot ``skip``), write slot ``dst``."""

    index: int
    upsample: bool
    src: int
    dst: int
    skip: int | None
    ch_in: int
    ch_out: int


def decoder_plan(shape_enc: tuple[int, ...], shape_dec: tuple[int, ...]) -> list[DecoderStep]:
    """The 10 steps for encoder channels ``shape_enc`` = (C4, C3, C2, C1, C0) and decoder channels ``shape_dec``."""
    steps = []
    for level in range(NUM_SLOTS):
        pre_in = shape_enc[0] if level == 0 else shape_dec[level - 1]
        steps.append(DecoderStep(2 * level, False, max(level - 1, 0), level, None, pre_in, shape_dec[level]))
        skip = level + 1 if level + 1 < NUM_SLOTS else None
        up_in = shape_dec[level] + (shape_enc[skip] if skip is not None else 0)
        steps.append(DecoderStep(2 * level + 1, True, level, level, skip, up_in, shape_dec[level]))
    return steps


class ConvBlock(nn.Module):
    """ReflectionPad(1) + 3x3 conv (bias) + ELU, optionally preceded by ×2 nearest upsampling and a skip concat."""

    def __init__(self, ch_in: int, ch_out: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(ch_in, ch_out, kernel_size=3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat((x, skip), dim=1)
        return F.elu(self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect")))


class PartialDecoder(nn.Module):
    """The steps ``[start, stop)`` of the decoder plan; maps a 5-slot tuple to a 5-slot tuple."""

    def __init__(self, plan: list[DecoderStep], start: int, stop: int) -> None:
        super().__init__()
        self.steps = plan[start:stop]
        self.blocks = nn.ModuleDict({f"step_{s.index}": ConvBlock(s.ch_in, s.ch_out, s.upsample) for s in self.steps})

    def forward(self, slots: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        slots = list(slots)
        for step in self.steps:
            skip = slots[step.skip] if step.skip is not None else None
            slots[step.dst] = self.blocks[f"step_{step.index}"](slots[step.src], skip)
        return tuple(slots)


def _head_conv(ch_in: int, ch_out: int) -> nn.Conv2d:
    return nn.Conv2d(ch_in, ch_out, kernel_size=3)


def _apply_head(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))


class MultiResDepth(nn.Module):
    """Sigmoid disparity heads on the last ``len(channels)`` decoder slots; ``convs.0`` is the full resolution.

    ``channels`` lists the input channels full resolution first, e.g. (16, 32, 64, 128). Biases start at +5.
    """

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_head_conv(c, 1) for c in channels)
        for conv in self.convs:
            nn.init.constant_(conv.bias, 5.0)

    def forward(self, slots: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Decoder slots → disparities (B×1×H×W, B×1×H/2×W/2, ...) in (0, 1)."""
        finest_first = slots[::-1][: len(self.convs)]
        return tuple(torch.sigmoid(_apply_head(conv, x)) for conv, x in zip(self.convs, finest_first, strict=True))


class MultiResSeg(nn.Module):
    """Segmentation head ``convs.0``: ReflectionPad(1) + 3x3 conv to ``num_classes`` logits on the last slot."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_head_conv(channels, num_classes)])

    def forward(self, slots: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Decoder slots → B×num_classes×H×W raw logits."""
        return _apply_head(self.convs[0], slots[-1])
