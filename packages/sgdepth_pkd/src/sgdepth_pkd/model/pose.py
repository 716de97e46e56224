"""Pose network: 2-image ResNet encoder + PoseDecoder, axis-angle/translation → 4x4 camera transform."""

from __future__ import annotations

import torch
from torch import nn

from sgdepth_pkd.geometry import transformation_from_parameters
from sgdepth_pkd.model.encoder import ResnetEncoder

__all__ = ["PoseDecoder", "PoseNet"]

_INIT_SCALE = 0.01


class PoseDecoder(nn.Module):
    """squeeze 1x1 → ReLU → 3x3 → ReLU → 3x3 → ReLU → 1x1 to 6, spatial mean.

    B×C×h×w → (axis-angle B×1×1×3, translation B×1×1×3). The last conv starts at 0.01× its default init.
    """

    def __init__(self, in_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, hidden, kernel_size=1)
        self.conv_1 = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1)
        self.conv_2 = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1)
        self.conv_3 = nn.Conv2d(hidden, 6, kernel_size=1)
        with torch.no_grad():
            self.conv_3.weight.mul_(_INIT_SCALE)
            self.conv_3.bias.mul_(_INIT_SCALE)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.squeeze(x))
        x = torch.relu(self.conv_1(x))
        x = torch.relu(self.conv_2(x))
        x = self.conv_3(x).mean(dim=(2, 3)).reshape(-1, 1, 1, 6)
        return x[..., :3], x[..., 3:]


class PoseNet(nn.Module):
    """Pose encoder (ResNet on 2 stacked images, same block self-attention) + PoseDecoder on its last feature."""

    def __init__(self, num_layers: int, attention_blocks: int = 1, keep_unused_params: bool = True) -> None:
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, 2, attention_blocks, keep_unused_params)
        self.decoder = PoseDecoder(self.encoder.num_ch_enc[-1])

    def forward(self, pair: torch.Tensor, invert: bool) -> torch.Tensor:
        """B×6×H×W (two frames stacked along channels) → B×1×1×4×4 camera transform.

        The decoder reads the encoder's last output, i.e. l4 *after* block self-attention (spec §b.5, clarified).
        """
        axis_angle, translation = self.decoder(self.encoder(pair)[-1])
        return transformation_from_parameters(axis_angle, translation, invert)
