"""Shared / pose encoder: torchvision ResNet + block self-attention on the skips (authors' final ``ResnetEncoder``)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from sgdepth_pkd.config import RESNET_DEPTHS
from sgdepth_pkd.model.attention import BlockSelfAttention

__all__ = ["DilatedConv", "ResnetEncoder", "build_resnet", "encoder_channels"]

# Input channels of the unused ``convx`` (the authors' "mypool" concat of max-pool, avg-pool and a 256-channel map).
_CONVX_IN, _CONVX_OUT = 768, 256


def encoder_channels(num_layers: int) -> tuple[int, int, int, int, int]:
    """Channels of l0..l4: (64, 256, 512, 1024, 2048) for bottleneck ResNets (>34 layers), else (64, 64, 128, 256, 512)."""
    if num_layers not in RESNET_DEPTHS:
        raise ValueError(f"num_layers: {num_layers} is not one of {RESNET_DEPTHS}")
    return (64, 256, 512, 1024, 2048) if num_layers > 34 else (64, 64, 128, 256, 512)


def build_resnet(num_layers: int, num_input_images: int = 1) -> torchvision.models.ResNet:
    """Randomly initialised torchvision ResNet without ``fc``; conv1 takes 3·``num_input_images`` channels."""
    if num_layers not in RESNET_DEPTHS:
        raise ValueError(f"num_layers: {num_layers} is not one of {RESNET_DEPTHS}")
    if num_input_images < 1:
        raise ValueError(f"num_input_images: must be >= 1, got {num_input_images}")
    resnet = getattr(torchvision.models, f"resnet{num_layers}")(weights=None)
    if num_input_images > 1:
        resnet.conv1 = nn.Conv2d(3 * num_input_images, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
    resnet.fc = None
    return resnet


class DilatedConv(nn.Module):
    """3x3 conv with dilation 2 (+ReLU). Present in the authors' encoder but never called in forward."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=2, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class ResnetEncoder(nn.Module):
    """ResNet backbone returning (l0, l1, l2, l3, l4) with block self-attention applied to l1..l4.

    For a B×3n×H×W input: l0 = relu(bn1(conv1(x))) 64@H/2, l1..l4 = layer1(maxpool(l0))..layer4 at H/4..H/32.
    The attention runs on each of l1..l4 *after* the whole chain (the next stage consumes the un-attended map); l0 is
    returned unchanged. ``keep_unused_params`` keeps the authors' never-used ``dilated_conv`` and ``convx`` modules so
    that checkpoints load key for key.
    """

    def __init__(
        self,
        num_layers: int,
        num_input_images: int = 1,
        attention_blocks: int = 1,
        keep_unused_params: bool = True,
    ) -> None:
        super().__init__()
        self.num_input_images = num_input_images
        self.num_ch_enc = encoder_channels(num_layers)
        self.encoder = build_resnet(num_layers, num_input_images)
        if keep_unused_params:
            self.dilated_conv = DilatedConv(self.num_ch_enc[-1])
            self.convx = nn.Conv2d(_CONVX_IN, _CONVX_OUT, kernel_size=1)
        self.fusion_module = BlockSelfAttention(attention_blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """B×3n×H×W → (l0, l1', l2', l3', l4') where l' = BSA(l)."""
        if x.dim() != 4 or x.shape[1] != 3 * self.num_input_images:
            raise ValueError(f"x: expected B×{3 * self.num_input_images}×H×W, got shape {tuple(x.shape)}")
        net = self.encoder
        l0 = net.relu(net.bn1(net.conv1(x)))
        l1 = net.layer1(net.maxpool(l0))
        l2 = net.layer2(l1)
        l3 = net.layer3(l2)
        l4 = net.layer4(l3)
        return (l0, *(self.fusion_module(feature) for feature in (l1, l2, l3, l4)))
