"""The exact fast path of :class:`semstereo.model.SemStereo` (``impl="fast"``): the same network, fewer operations.

- Both views go through the backbone and the decoder in ONE batched call (eval-mode BatchNorm and the backbone's
  per-sample GroupNorm/attention make each sample independent, so this is the per-view computation).
- The right view's 1/2-scale decoder level feeds only ``head_r`` (training): in eval it is not computed.
- Eval-mode BatchNorm is folded into the preceding convolution (``w·s``, ``b·s + β - μ·s`` with
  ``s = γ / sqrt(σ² + ε)``); a BatchNorm in training mode is applied as is.
Everything else runs the reference modules. Outputs equal the reference within the parity tolerances.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semstereo.model.blocks import BasicConv, ChannelAtt, Conv2x
from semstereo.model.decoder import FeatUp
from semstereo.model.hourglass import Hourglass

_CONV_FN = {nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


def _folded_parameters(conv: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The folded weight and bias of ``conv`` + eval ``bn``; without autograd they are kept on ``conv`` and reused
    until a parameter or statistic changes (in-place update, ``load_state_dict``, ``.to()``)."""
    sources = (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    key = tuple((t.data_ptr(), t._version, t.dtype) if t is not None else None for t in sources)
    cached = getattr(conv, "_folded_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    transposed = isinstance(conv, (nn.ConvTranspose2d, nn.ConvTranspose3d))
    shape = [1] * conv.weight.dim()
    shape[1 if transposed else 0] = -1  # output-channel axis (groups == 1 for the transposed convs here)
    weight = conv.weight * scale.view(shape)
    if not torch.is_grad_enabled():
        with torch.inference_mode(False), torch.no_grad():
            conv._folded_cache = (key, weight.clone(), bias.clone())
        return conv._folded_cache[1], conv._folded_cache[2]
    return weight, bias


def fold_conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` with an eval-mode BatchNorm folded into the convolution (training-mode BN: unfolded)."""
    if bn.training:
        return bn(conv(x))
    weight, bias = _folded_parameters(conv, bn)
    if isinstance(conv, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
        fn = F.conv_transpose2d if isinstance(conv, nn.ConvTranspose2d) else F.conv_transpose3d
        return fn(x, weight, bias, conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation)
    return _CONV_FN[type(conv)](x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def basic_conv(block: BasicConv, x: torch.Tensor) -> torch.Tensor:
    """:class:`BasicConv` with its BatchNorm folded."""
    x = fold_conv_bn(block.conv, block.bn, x)
    return F.relu(x, inplace=True) if block.relu else x


def conv2x(block: Conv2x, x: torch.Tensor, rem: torch.Tensor) -> torch.Tensor:
    """:class:`Conv2x` through :func:`basic_conv`."""
    x = basic_conv(block.conv1, x)
    if x.shape != rem.shape:
        x = F.interpolate(x, size=rem.shape[-2:], mode="bilinear", align_corners=False)
    return basic_conv(block.conv2, torch.cat((x, rem), dim=1))


def conv_bn_sequential(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """A ``Sequential`` of (conv, BatchNorm[, ReLU]) pairs, each pair folded; other modules run as they are."""
    modules = list(seq)
    i = 0
    while i < len(modules):
        module = modules[i]
        following = modules[i + 1] if i + 1 < len(modules) else None
        if isinstance(following, nn.modules.batchnorm._BatchNorm) and isinstance(module, nn.modules.conv._ConvNd):
            x = fold_conv_bn(module, following, x)
            i += 2
        elif isinstance(module, BasicConv):
            x = basic_conv(module, x)
            i += 1
        elif isinstance(module, nn.Sequential):
            x = conv_bn_sequential(module, x)
            i += 1
        else:
            x = module(x)
            i += 1
    return x


def feat_up(decoder: FeatUp, features: list[torch.Tensor], left_only_top: int | None) -> list[torch.Tensor]:
    """:class:`FeatUp` on a batch of both views; with ``left_only_top = B`` the 1/2 level is computed only for the
    first ``B`` samples (the left views)."""
    x2, x4, x8, x16, x32 = features
    y16 = conv2x(decoder.deconv32_16, x32, x16)
    y8 = conv2x(decoder.deconv16_8, y16, x8)
    y4 = conv2x(decoder.deconv8_4, y8, x4)
    if left_only_top is not None:
        y4_top, x2 = y4[:left_only_top], x2[:left_only_top]
    else:
        y4_top = y4
    y2 = conv2x(decoder.deconv4_2, y4_top, x2)
    return [y2, y4, y8, y16, x32]


def hourglass(block: Hourglass, x: torch.Tensor) -> torch.Tensor:
    """:class:`Hourglass` with every conv + BatchNorm pair folded."""
    conv2 = conv_bn_sequential(block.conv2, conv_bn_sequential(block.conv1, x))
    conv4 = block.attention_block(conv_bn_sequential(block.conv4, conv_bn_sequential(block.conv3, conv2)))
    conv5 = F.relu(conv_bn_sequential(block.conv5, conv4) + conv_bn_sequential(block.redir2, conv2))
    return F.relu(conv_bn_sequential(block.conv6, conv5) + conv_bn_sequential(block.redir1, x))


def channel_att(block: ChannelAtt, cv: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """:class:`ChannelAtt` with its BatchNorm folded."""
    return torch.sigmoid(conv_bn_sequential(block.im_att, im)).unsqueeze(2) * cv
