"""Global-Local Attention (GLA) module and the GLA ResNet encoder of the shipped source (not wired into SGDepth).

GLAM(x) = fusion_conv(cat(global(x), local(x))) + x, where the global branch is SCConv + a 1x1 conv gated by a
max/avg-pooled channel MLP, and the local branch is multi-head spatial attention inside soft instance masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sgdepth_pkd.config import GLAEncoderConfig
from sgdepth_pkd.model.encoder import build_resnet, encoder_channels

__all__ = ["GLAResNetEncoder", "GlobalAttention", "GlobalLocalAttentionModule", "LocalAttention", "SCConv"]

_STAGES = ("layer1", "layer2", "layer3", "layer4")


class SCConv(nn.Module):
    """Depthwise 3x3 conv → BN → ReLU → 1x1 C→C/r → BN → ReLU → 1x1 C/r→C, plus the input (B×C×H×W → same)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction
        self.spatial_conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, groups=channels)
        self.spatial_bn = nn.BatchNorm2d(channels)
        self.channel_conv = nn.Conv2d(channels, hidden, kernel_size=1)
        self.channel_bn = nn.BatchNorm2d(hidden)
        self.channel_restore = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.spatial_bn(self.spatial_conv(x)))
        y = torch.relu(self.channel_bn(self.channel_conv(y)))
        return self.channel_restore(y) + x


class GlobalAttention(nn.Module):
    """f = conv1x1(SCConv(x)); gate = sigmoid(MLP(cat(globalmax f, globalavg f))); output f·gate (B×C×H×W)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.scconv = SCConv(channels, reduction)
        self.conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.mlp = nn.Sequential(
            nn.Linear(2 * channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv(self.scconv(x))
        pooled = torch.cat((f.amax(dim=(2, 3)), f.mean(dim=(2, 3))), dim=1)
        return f * self.mlp(pooled)[:, :, None, None]


class LocalAttention(nn.Module):
    """Multi-head spatial attention inside soft instance masks (B×C×H×W → same).

    M = softmax over ``num_instances`` channels of a 1x1 conv. For each instance i: x_i = x·M_i; q, k, v = 1x1 convs of
    x_i split into heads (B×h×C/h×HW); q and k are L2-normalised along HW; A = softmax(qᵀk/√(C/h)) (B×h×HW×HW);
    out_i = v·Aᵀ; the result is Σ_i out_i·M_i.
    """

    def __init__(self, channels: int, num_instances: int = 8, num_heads: int = 4) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide channels {channels}")
        self.num_instances = num_instances
        self.num_heads = num_heads
        self.instance_conv = nn.Conv2d(channels, num_instances, kernel_size=1)
        self.query_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.reshape(b, self.num_heads, c // self.num_heads, h * w)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self._heads(self.query_conv(x)), dim=-1)
        k = F.normalize(self._heads(self.key_conv(x)), dim=-1)
        v = self._heads(self.value_conv(x))
        scores = q.transpose(-2, -1) @ k / math.sqrt(q.shape[-2])
        return (v @ scores.softmax(dim=-1).transpose(-2, -1)).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = self.instance_conv(x).softmax(dim=1)
        out = torch.zeros_like(x)
        for i in range(self.num_instances):
            mask = masks[:, i : i + 1]
            out = out + self._attend(x * mask) * mask
        return out


class GlobalLocalAttentionModule(nn.Module):
    """GLAM: ``fusion_conv(cat(global_attention(x), local_attention(x))) + x`` for B×C×H×W input."""

    def __init__(self, in_channels: int, num_instances: int = 8, num_heads: int = 4, reduction: int = 4) -> None:
        super().__init__()
        self.global_attention = GlobalAttention(in_channels, reduction)
        self.local_attention = LocalAttention(in_channels, num_instances, num_heads)
        self.fusion_conv = nn.Conv2d(2 * in_channels, in_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.fusion_conv.out_channels:
            raise ValueError(f"x: expected B×{self.fusion_conv.out_channels}×H×W, got shape {tuple(x.shape)}")
        fused = torch.cat((self.global_attention(x), self.local_attention(x)), dim=1)
        return self.fusion_conv(fused) + x


class GLAResNetEncoder(nn.Module):
    """ResNet whose stages in ``config.glam_after`` are followed by a GLAM (``glam3``, ``glam4``, …).

    Keys are the torchvision names without prefix (``conv1``, ``bn1``, ``layer1..4``) then ``glam<k>``; the GLAM
    output feeds the next stage. B×3×H×W → [l0 (after ReLU), l1, l2, l3, l4] with the GLAM'd stages replaced.
    """

    def __init__(self, config: GLAEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or GLAEncoderConfig()
        depth = int(self.config.backbone.removeprefix("resnet"))
        self.num_ch_enc = encoder_channels(depth)
        resnet = build_resnet(depth)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        for stage in _STAGES:
            setattr(self, stage, getattr(resnet, stage))
        for index, stage in enumerate(_STAGES, start=1):
            if stage in self.config.glam_after:
                glam = GlobalLocalAttentionModule(
                    self.num_ch_enc[index], self.config.num_instances, self.config.num_heads, self.config.reduction
                )
                setattr(self, f"glam{index}", glam)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x: expected a B×3×H×W tensor, got shape {tuple(x.shape)}")
        features = [self.relu(self.bn1(self.conv1(x)))]
        x = self.maxpool(features[0])
        for index, stage in enumerate(_STAGES, start=1):
            x = getattr(self, stage)(x)
            if hasattr(self, f"glam{index}"):
                x = getattr(self, f"glam{index}")(x)
            features.append(x)
        return features
