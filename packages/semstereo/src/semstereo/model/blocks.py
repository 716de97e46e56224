"""Small convolutional building blocks shared by the SemStereo modules (original parameter names)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv(nn.Module):
    """Convolution (no bias) -> BatchNorm -> ReLU, 2-D or 3-D, optionally transposed (keys ``conv.*``, ``bn.*``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        deconv: bool = False,
        is_3d: bool = False,
        relu: bool = True,
    ) -> None:
        super().__init__()
        if is_3d:
            conv_type = nn.ConvTranspose3d if deconv else nn.Conv3d
            norm_type: type[nn.Module] = nn.BatchNorm3d
        else:
            conv_type = nn.ConvTranspose2d if deconv else nn.Conv2d
            norm_type = nn.BatchNorm2d
        self.conv = conv_type(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = norm_type(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


def convbn_3d(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """Conv3d (no bias) + BatchNorm3d, keys ``0.weight``, ``1.*``."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(out_channels),
    )


class Conv2x(nn.Module):
    """Upsample-and-merge block: ``B×Cin×h×w`` + skip ``B×Cout×H×W`` -> ``B×2Cout×H×W``.

    ``conv1`` is a stride-2 4×4 transposed conv (BN, ReLU); if its output size differs from the skip's it is resized
    bilinearly (``align_corners=False``); the result is concatenated with the skip ``[x, rem]`` and fused by the 3×3
    ``conv2`` (BN, ReLU), keeping the ``2Cout`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = BasicConv(in_channels, out_channels, kernel_size=4, stride=2, padding=1, deconv=True)
        self.conv2 = BasicConv(2 * out_channels, 2 * out_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, rem: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if x.shape != rem.shape:
            x = F.interpolate(x, size=rem.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv2(torch.cat((x, rem), dim=1))


class ChannelAtt(nn.Module):
    """Image-guided channel attention on a cost volume (original ``channelAtt``).

    ``cv`` ``B×Ccv×D×H×W`` is multiplied by ``sigmoid(im_att(im))`` (``B×Ccv×1×H×W``) computed from the image
    features ``im`` ``B×Cim×H×W`` (1×1 BasicConv to ``Cim/2``, then a 1×1 conv with bias to ``Ccv``).
    """

    def __init__(self, cv_chan: int, im_chan: int) -> None:
        super().__init__()
        self.im_att = nn.Sequential(
            BasicConv(im_chan, im_chan // 2, kernel_size=1), nn.Conv2d(im_chan // 2, cv_chan, kernel_size=1)
        )
        init_conv_bn(self)

    def forward(self, cv: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.im_att(im)).unsqueeze(2) * cv


class SegmentHead(nn.Module):
    """Segmentation head (original ``segmenthead``): ``B×Cin×h×w`` -> logits ``B×K×(s·h)×(s·w)``.

    3×3 BasicConv to ``interplanes``, 1×1 conv with bias to ``outplanes`` classes, bilinear ×``scale_factor``.
    """

    def __init__(self, inplanes: int, interplanes: int, outplanes: int, scale_factor: int = 2) -> None:
        super().__init__()
        self.conv1 = BasicConv(inplanes, interplanes, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(interplanes, outplanes, kernel_size=1, bias=True)
        self.scale_factor = scale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        size = (x.shape[-2] * self.scale_factor, x.shape[-1] * self.scale_factor)
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def init_conv_bn(module: nn.Module) -> None:
    """The original ``weight_init`` (training only): conv weights ~ N(0, sqrt(2 / (k·k·out))), BN = (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0.0, (2.0 / n) ** 0.5)
        elif isinstance(m, nn.Conv3d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2] * m.out_channels
            m.weight.data.normal_(0.0, (2.0 / n) ** 0.5)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()
