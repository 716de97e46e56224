"""Semantic Selective Refinement (SSR): semantics-gated residual upsampling of a 1/4 disparity map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SSRUpsample(nn.Module):
    """Original ``SSR_upsample(num_classes=6)`` (231 state_dict values, 189 trainable).

    Args of ``forward``: ``depth_low`` ``B×1×h×w`` (1/4-scale disparity, 1/4-scale units), ``weights`` ``B×6×4h×4w``
    (the guidance map ``spx_pred``), ``pred_label`` ``B×6×4h×4w`` (segmentation logits).
    Returns ``B×4h×4w``: the bilinearly upsampled disparity (values not rescaled) plus a residual
    ``conv3(conv(d_up) · A)`` where ``A`` is a twice sigmoid-gated product of the class probabilities and the guidance.
    """

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.BatchNorm2d(1), nn.Conv2d(1, num_classes, 3, padding=1, bias=True), nn.BatchNorm2d(num_classes)
        )
        self.conv1 = nn.Sequential(nn.Conv2d(num_classes, num_classes, 1, bias=True), nn.BatchNorm2d(num_classes))
        self.conv2 = nn.Sequential(nn.Conv2d(num_classes, num_classes, 1, bias=True), nn.BatchNorm2d(num_classes))
        self.conv3 = nn.Conv2d(num_classes, 1, 1, bias=True)

    def forward(self, depth_low: torch.Tensor, weights: torch.Tensor, pred_label: torch.Tensor) -> torch.Tensor:
        height, width = 4 * depth_low.shape[-2], 4 * depth_low.shape[-1]
        if weights.shape[-2:] != (height, width) or pred_label.shape[-2:] != (height, width):
            raise ValueError(
                f"SSRUpsample: guidance {tuple(weights.shape)} and labels {tuple(pred_label.shape)} must be 4x the "
                f"disparity size {tuple(depth_low.shape)}"
            )
        prob = torch.softmax(pred_label, dim=1)
        d_up = F.interpolate(depth_low, size=(height, width), mode="bilinear", align_corners=False)
        feat = self.conv(d_up)
        gate = torch.sigmoid(self.conv1(prob * weights))
        gate = torch.sigmoid(self.conv2(gate * weights))
        return (d_up + self.conv3(feat * gate)).squeeze(1)
