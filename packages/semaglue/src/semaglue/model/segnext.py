"""SegNext wrapper: MSCAN-Tiny stages 2-4 resized to the stride-8 grid and concatenated (the semantic map)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semaglue.config import SegNextConfig
from semaglue.model.mscan import MSCAN


class SegNext(nn.Module):
    """Frozen semantic backbone. ``B×1×H×W`` (grey, [0, 1], repeated to 3 channels, **no** mean/std
    normalisation, as in the authors' code) or ``B×3×H×W`` -> ``{"feature_map": B×480×H/8×W/8}``."""

    def __init__(self, config: SegNextConfig | None = None) -> None:
        super().__init__()
        self.config = config or SegNextConfig()
        self.backbone = MSCAN(self.config)

    def stages(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's four stage outputs for a (grey-repeated) image."""
        if image.ndim != 4 or image.shape[1] not in (1, self.config.in_channels):
            raise ValueError(f"image must be B×1×H×W or B×{self.config.in_channels}×H×W, got {tuple(image.shape)}")
        if image.shape[1] == 1:
            image = image.repeat(1, self.config.in_channels, 1, 1)
        return self.backbone(image)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = self.stages(image)[1:]
        size = stages[0].shape[-2:]
        resized = [F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in stages]
        return {"feature_map": torch.cat(resized, dim=1)}
