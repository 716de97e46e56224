"""3-D hourglass cost aggregation with window attention at the bottleneck (original ``hourglass``/``hourglass2``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semstereo.model.attention3d import AttentionBlock
from semstereo.model.blocks import convbn_3d


def _deconv_bn_3d(in_channels: int, out_channels: int) -> nn.Sequential:
    """Stride-2 3×3×3 transposed Conv3d (no bias) + BatchNorm3d: doubles D, H, W."""
    return nn.Sequential(
        nn.ConvTranspose3d(in_channels, out_channels, 3, padding=1, output_padding=1, stride=2, bias=False),
        nn.BatchNorm3d(out_channels),
    )


class Hourglass(nn.Module):
    """``B×C×D×H×W`` -> same shape; two stride-2 stages to ``4C`` channels at ``D/4×H/4×W/4``, window attention
    (16 heads, window ``block``), two transposed-conv stages with 1×1×1 skip projections (``redir1/2``).

    ``block=(4,4,4)`` is the 1/8 attention hourglass (``hourglass_att``), ``(6,4,4)`` the top-k one (``hourglass``).
    D, H and W must be divisible by 4 (and D/4 by the window depth).
    """

    def __init__(self, in_channels: int, block: tuple[int, int, int] = (4, 4, 4)) -> None:
        super().__init__()
        c = in_channels
        self.conv1 = nn.Sequential(convbn_3d(c, 2 * c, 3, 2, 1), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(convbn_3d(2 * c, 2 * c, 3, 1, 1), nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(convbn_3d(2 * c, 4 * c, 3, 2, 1), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(convbn_3d(4 * c, 4 * c, 3, 1, 1), nn.ReLU(inplace=True))
        self.attention_block = AttentionBlock(4 * c, num_heads=16, block=block)
        self.conv5 = _deconv_bn_3d(4 * c, 2 * c)
        self.conv6 = _deconv_bn_3d(2 * c, c)
        self.redir1 = convbn_3d(c, c, 1, 1, 0)
        self.redir2 = convbn_3d(2 * c, 2 * c, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv2 = self.conv2(self.conv1(x))
        conv4 = self.attention_block(self.conv4(self.conv3(conv2)))
        conv5 = F.relu(self.conv5(conv4) + self.redir2(conv2))
        return F.relu(self.conv6(conv5) + self.redir1(x))


def classifier_3d(channels: int) -> nn.Sequential:
    """Cost head ``B×C×D×H×W`` -> ``B×1×D×H×W`` (original ``classif``/``classif_att_``)."""
    return nn.Sequential(
        convbn_3d(channels, channels, 3, 1, 1),
        nn.ReLU(inplace=True),
        nn.Conv3d(channels, 1, kernel_size=3, padding=1, stride=1, bias=False),
    )
