"""U-shaped deconvolution decoder (original ``FeatUp``), shared by both views."""

from __future__ import annotations

import torch
from torch import nn

from semstereo.model.blocks import Conv2x, init_conv_bn


class FeatUp(nn.Module):
    """``[x2, x4, x8, x16, x32]`` (widths ``c``) -> ``[y2, y4, y8, y16, x32]`` with ``2·c[i]`` channels for i < 4.

    Each ``Conv2x`` upsamples the coarser output and fuses it with the backbone skip of the next level.
    """

    def __init__(self, widths: tuple[int, int, int, int, int] | list[int]) -> None:
        super().__init__()
        c = list(widths)
        self.deconv32_16 = Conv2x(c[4], c[3])
        self.deconv16_8 = Conv2x(2 * c[3], c[2])
        self.deconv8_4 = Conv2x(2 * c[2], c[1])
        self.deconv4_2 = Conv2x(2 * c[1], c[0])
        init_conv_bn(self)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x2, x4, x8, x16, x32 = features
        y16 = self.deconv32_16(x32, x16)
        y8 = self.deconv16_8(y16, x8)
        y4 = self.deconv8_4(y8, x4)
        y2 = self.deconv4_2(y4, x2)
        return [y2, y4, y8, y16, x32]
