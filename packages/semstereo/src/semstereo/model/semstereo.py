"""SemStereo: joint semantic segmentation and signed-disparity stereo (AAAI 2025), US3D and WHU variants.

Data flow (shapes for the paper config, B×3×H×W input, M = maxdisp = 64):

1. ``feature`` (MobileViTv2) and ``feature_up`` (deconv decoder) per view -> 5 levels at 1/2 .. 1/32.
2. ``head_l`` / ``head_r`` on the 1/2 level -> ``label_left`` / ``label_right`` logits B×6×H×W.
3. ``chal_i`` reduce channels -> L0..L4 (left), R1, R2 (right); guidance branch ``spx*`` -> ``spx_pred`` B×6×H×W.
4. 1/8 normalised group-wise correlation over the signed range [-M/8, M/8) -> ``patch`` -> channel attention ->
   ``hourglass_att`` -> ``classif_att_`` -> attention volume, upsampled to the 1/4 hypotheses, propagated and
   weighted by the warped-feature sample strength; top-``k`` planes kept.
5. Concatenation branch (stage 2): sparse concat volume at the top-k hypotheses weighted by their attention ->
   ``concat_stem`` -> channel attention -> ``hourglass`` -> ``classif`` -> top-2 regression.
6. ``ssr_upsample`` (SSR) lifts each 1/4 disparity to full resolution with the semantic map and the guidance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from semcommon.checkpoint import LoadReport
from semcommon.kernels import concat_volume, gwc_volume_norm
from semstereo.config import SemStereoConfig
from semstereo.model import fast as fast_ops
from semstereo.model.backbone import Feature
from semstereo.model.blocks import BasicConv, ChannelAtt, Conv2x, SegmentHead
from semstereo.model.cost_volume import (
    disparity_regression,
    disparity_variance,
    propagation,
    propagation_prob,
    regression_topk,
    select_topk,
    spatial_transformer_grid,
)
from semstereo.model.decoder import FeatUp
from semstereo.model.hourglass import Hourglass, classifier_3d
from semstereo.model.ssr import SSRUpsample

IMPLS = ("fast", "reference")


@dataclass
class SemStereoOutput:
    """What :class:`SemStereo` returns.

    ``disparities`` (full-resolution pixels) follow the original's order:
    training stage 2 ``[final B×H×W, final 1/4 B×H/4×W/4, attention B×H×W, attention 1/4]``,
    training stage 1 ``[attention B×H×W, attention 1/4]``, eval ``[final]`` (stage 1: ``[attention]``).
    ``label_right`` is ``None`` in eval mode. ``intermediates`` is filled when requested.
    """

    disparities: list[torch.Tensor]
    label_left: torch.Tensor
    label_right: torch.Tensor | None = None
    intermediates: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def disparity(self) -> torch.Tensor:
        """The final full-resolution disparity ``B×H×W``."""
        return self.disparities[0]

    def to_tuple(self) -> tuple:
        """The original return value: ``(disps, label, label_r)`` in training, ``(disps, label)`` in eval."""
        if self.label_right is None:
            return self.disparities, self.label_left
        return self.disparities, self.label_left, self.label_right


@dataclass
class _Encoded:
    """Per-view features the heads and volumes use: right backbone maps, left reductions L0..L4, right R1/R2
    (``right4``, ``right8``) and the 1/2 decoder levels (``up_right`` only when training)."""

    feats_r: list[torch.Tensor]
    lefts: list[torch.Tensor]
    right4: torch.Tensor
    right8: torch.Tensor
    up_left: torch.Tensor
    up_right: torch.Tensor | None


def _channel_reduction(in_channels: int, out_channels: int) -> nn.Sequential:
    """1×1 conv with bias + BatchNorm, no activation (``chal_i``)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=True), nn.BatchNorm2d(out_channels))


class SemStereo(nn.Module):
    """The SemStereo network; ``SemStereoConfig(variant="whu", maxdisp=128)`` gives ``SemStereo_WHU``.

    ``forward(left, right)`` takes ImageNet-normalised ``B×3×H×W`` pairs (H, W multiples of 32) and returns a
    :class:`SemStereoOutput`. ``state_dict()`` keys equal the original's.
    """

    def __init__(self, config: SemStereoConfig | None = None, backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SemStereoConfig()
        widths = cfg.stage_widths
        chans, chans2 = cfg.chans, cfg.chans2
        hg = cfg.hourglass_channels
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(2 * torch.ones(1))
        self.feature = Feature(cfg.backbone, pretrained=backbone_weights)
        self.feature_up = FeatUp(widths)
        self.head_l = SegmentHead(chans[0], widths[0] // 2, cfg.num_classes, scale_factor=2)
        self.head_r = SegmentHead(chans[0], widths[0] // 2, cfg.num_classes, scale_factor=2)
        self.spx2 = nn.Sequential(nn.ConvTranspose2d(2 * chans2[0], cfg.num_classes, 4, stride=2, padding=1))
        self.spx4_2 = Conv2x(2 * chans2[1], chans2[0])
        self.spx8_4 = Conv2x(2 * chans2[2], chans2[1])
        self.spx16_8 = Conv2x(2 * chans2[3], chans2[2])
        self.spx32_16 = Conv2x(chans2[4], chans2[3])
        self.chal_0 = _channel_reduction(chans[0], chans2[0])
        self.chal_1 = _channel_reduction(chans[1], chans2[1])
        self.chal_2 = _channel_reduction(chans[2], chans2[2])
        self.chal_3 = _channel_reduction(chans[3], chans2[3])
        self.chal_4 = _channel_reduction(chans[4], chans2[4])
        groups = cfg.gwc_groups
        self.patch = nn.Conv3d(groups, groups, (1, 3, 3), padding=(0, 1, 1), groups=groups, bias=False)
        self.concat_feature = nn.Sequential(
            BasicConv(chans2[1], chans2[1] // 2, kernel_size=3, padding=1),
            nn.Conv2d(chans2[1] // 2, hg, 3, padding=1, bias=False),
        )
        self.corr_feature_att_8 = ChannelAtt(groups, chans2[2])
        self.concat_feature_att_4 = ChannelAtt(hg, chans2[1])
        self.hourglass_att = Hourglass(groups, block=(4, 4, 4))
        self.classif_att_ = classifier_3d(groups)
        self.hourglass = Hourglass(hg, block=(cfg.topk // 4, 4, 4))
        self.classif = classifier_3d(hg)
        self.concat_stem = BasicConv(2 * hg, hg, kernel_size=3, padding=1, is_3d=True)
        self.ssr_upsample = SSRUpsample(cfg.num_classes)
        self.load_report: LoadReport | None = None  # set by semstereo.load_pretrained
        self.impl = "fast"  # default of forward's ``impl``

    # ------------------------------------------------------------------------------------------------------------
    def _check_inputs(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate shapes/values; floating inputs are cast to the weights' dtype, integer inputs are refused."""
        for name, image in (("left", left), ("right", right)):
            if not image.is_floating_point():
                raise ValueError(
                    f"SemStereo: {name} has dtype {image.dtype}; the model takes ImageNet-normalised float images "
                    "(see semstereo.transforms.to_tensor)"
                )
        if left.dim() != 4 or left.shape[1] != 3:
            raise ValueError(f"SemStereo: left must be B×3×H×W, got {tuple(left.shape)}")
        if right.shape != left.shape:
            raise ValueError(f"SemStereo: right {tuple(right.shape)} does not match left {tuple(left.shape)}")
        height, width = left.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"SemStereo: H and W must be multiples of 32, got {height}x{width}")
        for name, image in (("left", left), ("right", right)):
            if not torch.isfinite(image).all():
                raise ValueError(f"SemStereo: {name} contains NaN or infinite values")
        dtype = self.gamma.dtype
        return left.to(dtype), right.to(dtype)

    def _guidance(self, lefts: list[torch.Tensor], fast: bool) -> torch.Tensor:
        """Guidance ("superpixel") branch: L0..L4 -> ``spx_pred`` B×6×H×W (raw)."""
        up = fast_ops.conv2x if fast else (lambda block, x, rem: block(x, rem))
        x = up(self.spx32_16, lefts[4], lefts[3])
        x = up(self.spx16_8, x, lefts[2])
        x = up(self.spx8_4, x, lefts[1])
        x = up(self.spx4_2, x, lefts[0])
        return self.spx2(x)

    def _encode(self, left: torch.Tensor, right: torch.Tensor, fast: bool) -> _Encoded:
        """Backbone, decoder and channel reductions of both views (fast, eval-mode BatchNorm: one batched call,
        no unused level)."""
        chal = (self.chal_0, self.chal_1, self.chal_2, self.chal_3, self.chal_4)
        if not fast or any(m.training for m in (self.feature, self.feature_up, self.chal_1, self.chal_2)):
            # reference (training-mode BatchNorm takes its statistics per view, so the views are not batched)
            feats_l, feats_r = self.feature(left), self.feature(right)
            up_l, up_r = self.feature_up(feats_l), self.feature_up(feats_r)
            lefts = [reduce(x) for reduce, x in zip(chal, up_l, strict=True)]
            return _Encoded(feats_r, lefts, self.chal_1(up_r[1]), self.chal_2(up_r[2]), up_l[0], up_r[0])
        batch = left.shape[0]
        feats = self.feature(torch.cat((left, right)))
        up = fast_ops.feat_up(self.feature_up, feats, None if self.training else batch)
        reduced = [fast_ops.conv_bn_sequential(reduce, x) for reduce, x in zip(chal[1:3], up[1:3], strict=True)]
        lefts = [fast_ops.conv_bn_sequential(self.chal_0, up[0][:batch]), reduced[0][:batch], reduced[1][:batch]]
        lefts += [fast_ops.conv_bn_sequential(reduce, x[:batch]) for reduce, x in zip(chal[3:], up[3:], strict=True)]
        up_right = up[0][batch:] if self.training else None
        feats_r = [f[batch:] for f in feats]
        return _Encoded(feats_r, lefts, reduced[0][batch:], reduced[1][batch:], up[0][:batch], up_right)

    def _attention_volume(
        self, left8: torch.Tensor, right8: torch.Tensor, fast: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """1/8 branch: correlation volume (after ``patch``) and the attention cost ``B×1×D8×H/8×W/8``."""
        low, high = self.config.volume_range
        corr = self.patch(gwc_volume_norm(left8, right8, low // 8, high // 8, self.config.gwc_groups))
        if fast:
            cost = fast_ops.hourglass(self.hourglass_att, fast_ops.channel_att(self.corr_feature_att_8, corr, left8))
            return corr, fast_ops.conv_bn_sequential(self.classif_att_, cost)
        cost = self.hourglass_att(self.corr_feature_att_8(corr, left8))
        return corr, self.classif_att_(cost)

    def _propagate(self, att_weights: torch.Tensor, left4: torch.Tensor, right4: torch.Tensor) -> torch.Tensor:
        """Refine the 1/4 attention volume ``B×1×D×h×w`` by the strength-weighted 5-neighbour propagation."""
        disp_min = self.config.hypotheses[0] // 4
        prob = torch.softmax(att_weights.squeeze(1), dim=1)
        pred = disparity_regression(prob, disp_min).unsqueeze(1)
        variance = torch.sigmoid(self.beta + self.gamma * disparity_variance(prob, disp_min, pred))
        samples = propagation(pred)
        right_warped, left_repeated = spatial_transformer_grid(left4, right4, samples)
        strength = (left_repeated * right_warped).mean(dim=1)
        strength = torch.softmax(strength * propagation(variance), dim=1)
        return (propagation_prob(att_weights) * strength.unsqueeze(2)).sum(dim=1, keepdim=True)

    def _concat_cost(
        self, left4: torch.Tensor, right4: torch.Tensor, samples: torch.Tensor, att_topk: torch.Tensor, fast: bool
    ) -> torch.Tensor:
        """Concatenation branch: sparse volume at the ``k`` hypotheses -> cost ``B×1×k×h×w``."""
        if fast and not self.concat_feature.training:
            features = fast_ops.conv_bn_sequential(self.concat_feature, torch.cat((left4, right4)))
            batch = left4.shape[0]
            volume = concat_volume(features[:batch], features[batch:], samples) * att_topk
            volume = fast_ops.channel_att(
                self.concat_feature_att_4, fast_ops.basic_conv(self.concat_stem, volume), left4
            )
            return fast_ops.conv_bn_sequential(self.classif, fast_ops.hourglass(self.hourglass, volume))
        volume = concat_volume(self.concat_feature(left4), self.concat_feature(right4), samples) * att_topk
        volume = self.concat_feature_att_4(self.concat_stem(volume), left4)
        return self.classif(self.hourglass(volume))

    def forward(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        return_intermediates: bool = False,
        impl: str | None = None,
    ) -> SemStereoOutput:
        """Run the network; see :class:`SemStereoOutput` for what comes back in training / eval mode.

        ``impl``: ``"fast"`` (the exact fast path of :mod:`semstereo.model.fast`) or ``"reference"`` (the authors'
        operations in their order); ``None`` uses the model's ``impl`` attribute (default ``"fast"``).
        """
        impl = self.impl if impl is None else impl
        if impl not in IMPLS:
            raise ValueError(f"SemStereo: impl must be one of {IMPLS}, got {impl!r}")
        fast = impl == "fast"
        left, right = self._check_inputs(left, right)
        cfg = self.config
        enc = self._encode(left, right, fast)
        lefts = enc.lefts
        label_left = self.head_l(enc.up_left)
        label_right = self.head_r(enc.up_right) if self.training else None
        spx_pred = self._guidance(lefts, fast)

        corr, cost_att = self._attention_volume(lefts[2], enc.right8, fast)
        low, high = cfg.hypotheses
        height4, width4 = lefts[1].shape[-2:]
        att_weights = F.interpolate(
            cost_att, size=((high - low) // 4, height4, width4), mode="trilinear", align_corners=False
        )
        att_weights = self._propagate(att_weights, lefts[1], enc.right4)
        att_prob = torch.softmax(att_weights, dim=2)
        index = select_topk(att_prob, cfg.topk)  # B×1×k×h×w
        att_topk = torch.gather(att_prob, 2, index)
        samples = index.squeeze(1).to(att_prob.dtype) + low // 4  # B×k×h×w, 1/4-scale disparities

        disparities: list[torch.Tensor] = []
        extras: dict[str, torch.Tensor] = {}
        if not cfg.att_weights_only:
            cost = self._concat_cost(lefts[1], enc.right4, samples, att_topk, fast)
            pred = regression_topk(cost.squeeze(1), samples, cfg.final_topk)
            disparities.append(self.ssr_upsample(pred, spx_pred, label_left) * 4)
            if self.training:
                disparities.append(pred.squeeze(1) * 4)
            extras["cost"] = cost
        if self.training or cfg.att_weights_only:
            att_prob_k = torch.softmax(torch.gather(att_weights, 2, index).squeeze(1), dim=1)
            pred_att = (att_prob_k * samples).sum(dim=1)
            disparities.append(self.ssr_upsample(pred_att.unsqueeze(1), spx_pred, label_left) * 4)
            if self.training:
                disparities.append(pred_att * 4)
        out = SemStereoOutput(disparities, label_left, label_right)
        if return_intermediates:
            out.intermediates = {
                **{f"feat_r.{i}": f for i, f in enumerate(enc.feats_r)},
                "corr_volume": corr,
                "cost_att": cost_att,
                "spx_pred": spx_pred,
                **extras,
            }
        return out


def build_model(config: SemStereoConfig | None = None, backbone_weights: str | Path | None = None) -> SemStereo:
    """Build :class:`SemStereo` from a config (default: the paper's US3D model)."""
    return SemStereo(config, backbone_weights=backbone_weights)
