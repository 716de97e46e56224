"""The image segmenter: SAM2 Hiera trunk + UperNet head (original class ``HieraSamUpernetImageModel``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssp.config import ImageModelConfig
from ssp.model.hiera import Hiera
from ssp.model.upernet import UperNetHead

__all__ = ["HieraUperNet", "build_image_model", "upsample_logits"]


def upsample_logits(logits: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Resize ``B×n×h×w`` logits to ``size`` with ``mode`` (align_corners False); no-op when already that size."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    if mode == "nearest":
        return F.interpolate(logits, size=size, mode="nearest")
    return F.interpolate(logits, size=size, mode=mode, align_corners=False)


class HieraUperNet(nn.Module):
    """``backbone`` (Hiera) + ``head`` (UperNet). ``B×3×H×W`` (multiples of 32) -> logits ``B×n×H×W``."""

    def __init__(self, config: ImageModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ImageModelConfig()
        self.backbone = Hiera(self.config.hiera_config)
        self.head = UperNetHead(self.config.upernet_config)

    def encoder(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Four backbone maps, strides 4/8/16/32."""
        return self.backbone(images)

    def decoder(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits at stride 4, ``B×n×H/4×W/4``."""
        return self.head(features)

    def decoder_lastfeat(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The head's last feature (before the classifier), ``B×channels×H/4×W/4``."""
        return self.head.last_feature(features)

    def forward_classifier(self, last_feature: torch.Tensor) -> torch.Tensor:
        """Only the 1×1 classifier."""
        return self.head.classifier(last_feature)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.encoder(images))
        return upsample_logits(logits, tuple(images.shape[-2:]), self.config.upsampling)


def build_image_model(checkpoint_model: str = "small", n_classes: int = 8, **overrides: object) -> HieraUperNet:
    """The image model of a size ("tiny", "small" = SSP student, "base_plus" = KD teacher)."""
    return HieraUperNet(ImageModelConfig(checkpoint_model=checkpoint_model, n_classes=n_classes, **overrides))
