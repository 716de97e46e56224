"""RAFT (standard, "things") optical flow, parameter names of princeton-vl/RAFT ``core``.

Used frozen by SSP: the consistency loss, the KD teacher-label consistency and the TC metric. It receives the
ImageNet-normalised frames as they are (the original's rescale to [-1, 1] is disabled). Flow maps pixels of
``image1`` to ``image2``; inputs need H/8 >= 16 and W/8 >= 16 (else the coarsest correlation level degenerates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semcommon.kernels import corr_lookup, corr_lookup_windowed, corr_pyramid, feature_pyramid
from ssp.config import RaftConfig
from ssp.model.upernet import folded_conv_bn

__all__ = ["RAFT", "BasicEncoder", "BasicUpdateBlock"]


def _conv_norm(conv: nn.Conv2d, norm: nn.Module, x: torch.Tensor, impl: str) -> torch.Tensor:
    """``norm(conv(x))``; with ``impl`` "fast" an eval-mode BatchNorm is folded into the convolution."""
    if impl == "reference" or not isinstance(norm, nn.BatchNorm2d) or norm.training:
        return norm(conv(x))
    weight, bias = folded_conv_bn(conv, norm)
    return F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    raise ValueError(f"norm_fn: expected batch | instance, got {kind!r}")


class ResidualBlock(nn.Module):
    """Two 3×3 convs with norm + ReLU and a (strided 1×1 conv + norm) shortcut when downsampling."""

    def __init__(self, in_planes: int, planes: int, norm_fn: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = _norm(norm_fn, planes)
        self.norm2 = _norm(norm_fn, planes)
        self.downsample: nn.Module | None = None
        if stride != 1:
            self.norm3 = _norm(norm_fn, planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm3)
        self.impl = "fast"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(_conv_norm(self.conv1, self.norm1, x, self.impl))
        y = self.relu(_conv_norm(self.conv2, self.norm2, y, self.impl))
        if self.downsample is not None:
            x = _conv_norm(self.downsample[0], self.downsample[1], x, self.impl)
        return self.relu(x + y)


class BasicEncoder(nn.Module):
    """Feature / context encoder: ``B×3×H×W`` -> ``B×output_dim×H/8×W/8``."""

    def __init__(self, output_dim: int = 256, norm_fn: str = "batch") -> None:
        super().__init__()
        self.norm1 = _norm(norm_fn, 64)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = self._layer(64, 64, norm_fn, 1)
        self.layer2 = self._layer(64, 96, norm_fn, 2)
        self.layer3 = self._layer(96, 128, norm_fn, 2)
        self.conv2 = nn.Conv2d(128, output_dim, kernel_size=1)
        self.impl = "fast"

    @staticmethod
    def _layer(in_dim: int, dim: int, norm_fn: str, stride: int) -> nn.Sequential:
        return nn.Sequential(ResidualBlock(in_dim, dim, norm_fn, stride), ResidualBlock(dim, dim, norm_fn, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(_conv_norm(self.conv1, self.norm1, x, self.impl))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class BasicMotionEncoder(nn.Module):
    """Correlation features + current flow -> 128 motion channels (126 learned + the 2 flow channels)."""

    def __init__(self, corr_levels: int = 4, corr_radius: int = 4) -> None:
        super().__init__()
        corr_planes = corr_levels * (2 * corr_radius + 1) ** 2
        self.convc1 = nn.Conv2d(corr_planes, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class SepConvGRU(nn.Module):
    """Convolutional GRU with a horizontal (1×5) then a vertical (5×1) pass.

    The input ``x`` is ``[context | motion]`` (RAFT); the context part is the same at every iteration, so the fast
    path (:meth:`context_terms`, :meth:`step_with_context`) convolves it once per image pair and each iteration
    only convolves ``[h | motion]`` (convolution is a sum over input channels; zero padding is per channel), with
    the z and r gates as one convolution.
    """

    def __init__(self, hidden_dim: int = 128, input_dim: int = 256) -> None:
        super().__init__()
        both = hidden_dim + input_dim
        self.hidden_dim = hidden_dim
        self.convz1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))

    def _step(
        self, h: torch.Tensor, x: torch.Tensor, convz: nn.Conv2d, convr: nn.Conv2d, convq: nn.Conv2d
    ) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(convz(hx))
        r = torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)

    def _passes(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]]:
        """Per pass: (z|r weight, z|r bias, q weight, q bias, padding)."""
        return [
            (torch.cat([z.weight, r.weight]), torch.cat([z.bias, r.bias]), q.weight, q.bias, z.padding)
            for z, r, q in ((self.convz1, self.convr1, self.convq1), (self.convz2, self.convr2, self.convq2))
        ]

    def context_terms(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per pass, the (z|r, q) convolutions of the context channels plus the biases: ``B×2h×H×W``, ``B×h×H×W``."""
        hidden, width = self.hidden_dim, context.shape[1]
        terms = []
        for zr_w, zr_b, q_w, q_b, padding in self._passes():
            columns = slice(hidden, hidden + width)
            terms.append((F.conv2d(context, zr_w[:, columns], zr_b, padding=padding),
                          F.conv2d(context, q_w[:, columns], q_b, padding=padding)))  # fmt: skip
        return terms

    def step_with_context(
        self, h: torch.Tensor, motion: torch.Tensor, terms: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """:meth:`forward` on ``x = [context | motion]`` given :meth:`context_terms` of the context."""
        hidden = self.hidden_dim
        for (zr_w, _, q_w, _, padding), (zr_ctx, q_ctx) in zip(self._passes(), terms, strict=True):
            start = zr_w.shape[1] - motion.shape[1]
            zr_w = torch.cat([zr_w[:, :hidden], zr_w[:, start:]], dim=1)
            q_w = torch.cat([q_w[:, :hidden], q_w[:, start:]], dim=1)
            z, r = torch.sigmoid(F.conv2d(torch.cat([h, motion], dim=1), zr_w, padding=padding) + zr_ctx).chunk(2, 1)
            q = torch.tanh(F.conv2d(torch.cat([r * h, motion], dim=1), q_w, padding=padding) + q_ctx)
            h = (1 - z) * h + z * q
        return h


class FlowHead(nn.Module):
    """Hidden state -> flow update ``B×2×h×w``."""

    def __init__(self, input_dim: int = 128, hidden_dim: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class BasicUpdateBlock(nn.Module):
    """One refinement step: motion encoder, GRU, flow head and the (×0.25) convex-upsampling mask."""

    def __init__(self, hidden_dim: int = 128, corr_levels: int = 4, corr_radius: int = 4) -> None:
        super().__init__()
        self.encoder = BasicMotionEncoder(corr_levels, corr_radius)
        self.gru = SepConvGRU(hidden_dim=hidden_dim, input_dim=128 + hidden_dim)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1))

    def forward(
        self,
        net: torch.Tensor,
        inp: torch.Tensor,
        corr: torch.Tensor,
        flow: torch.Tensor,
        with_mask: bool = True,
        context_terms: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(new hidden state, upsampling mask ``B×576×h×w`` or None when ``with_mask`` is False, flow update).

        ``context_terms``: the GRU's :meth:`SepConvGRU.context_terms` of ``inp`` (fast path), computed once a pair.
        """
        motion = self.encoder(flow, corr)
        if context_terms is None:
            net = self.gru(net, torch.cat([inp, motion], dim=1))
        else:
            net = self.gru.step_with_context(net, motion, context_terms)
        return net, 0.25 * self.mask(net) if with_mask else None, self.flow_head(net)


def coords_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates ``B×2×H×W`` with channel 0 = x."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([xs, ys], dim=0).float()[None].repeat(batch, 1, 1, 1)


def upsample_flow(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Convex 8× upsampling: ``B×2×h×w`` flow and ``B×576×h×w`` mask -> ``B×2×8h×8w``."""
    batch, _, height, width = flow.shape
    mask = torch.softmax(mask.view(batch, 1, 9, 8, 8, height, width), dim=2)
    patches = F.unfold(8 * flow, [3, 3], padding=1).view(batch, 2, 9, 1, 1, height, width)
    up = torch.sum(mask * patches, dim=2).permute(0, 1, 4, 2, 5, 3)
    return up.reshape(batch, 2, 8 * height, 8 * width)


class RAFT(nn.Module):
    """RAFT: ``fnet`` (instance norm), ``cnet`` (batch norm), ``update_block``.

    ``impl`` "fast" (exact within float32 rounding; see :func:`ssp.model.set_impl`): in ``test_mode`` the
    convex-upsampling mask and the upsampled flow are computed for the last iteration only (the others are
    discarded), eval-mode BN is folded into the convolutions, the GRU convolves the (iteration-invariant) context
    features once instead of every iteration and its z/r gates run as one convolution, and
    when the all-pairs correlation volume would exceed ``max_corr_mib`` the lookup correlates each window on the
    fly from the pooled ``fmap2`` pyramid (memory O(HW) instead of O(H²W²)). "reference": the authors' order.
    """

    def __init__(self, config: RaftConfig | None = None, max_corr_mib: float = 4096.0) -> None:
        super().__init__()
        self.impl = "fast"
        self.max_corr_mib = max_corr_mib
        self.config = config or RaftConfig()
        cfg = self.config
        self.hidden_dim, self.context_dim = cfg.hidden_dim, cfg.context_dim
        self.fnet = BasicEncoder(output_dim=256, norm_fn="instance")
        self.cnet = BasicEncoder(output_dim=cfg.hidden_dim + cfg.context_dim, norm_fn="batch")
        self.update_block = BasicUpdateBlock(cfg.hidden_dim, cfg.corr_levels, cfg.corr_radius)

    def forward(
        self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 12, test_mode: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor]:
        """Flow from ``image1`` to ``image2`` (``B×3×H×W`` each).

        ``test_mode``: ``(flow at 1/8, flow at full res)``; otherwise the list of upsampled flows of every iteration.
        """
        if image1.shape != image2.shape or image1.dim() != 4 or image1.shape[1] != 3:
            raise ValueError(
                f"RAFT: expected two equal B×3×H×W images, got {tuple(image1.shape)}, {tuple(image2.shape)}"
            )
        if image1.shape[-2] < 128 or image1.shape[-1] < 128:
            raise ValueError(
                f"RAFT: image height and width must be >= 128 (H/8, W/8 >= 16), got {tuple(image1.shape[-2:])}"
            )
        batch, fast = image1.shape[0], self.impl != "reference"
        fmaps = self.fnet(torch.cat([image1, image2], dim=0)).float()
        levels, radius = self.config.corr_levels, self.config.corr_radius
        if fast and self.corr_volume_mib(image1.shape) > self.max_corr_mib:
            fmap1, fmap2_pyramid = fmaps[:batch], feature_pyramid(fmaps[batch:], num_levels=levels)

            def lookup(coords: torch.Tensor) -> torch.Tensor:
                return corr_lookup_windowed(fmap1, fmap2_pyramid, coords, radius=radius)
        else:
            pyramid = corr_pyramid(fmaps[:batch], fmaps[batch:], num_levels=levels)

            def lookup(coords: torch.Tensor) -> torch.Tensor:
                return corr_lookup(pyramid, coords, radius=radius)

        net, inp = torch.split(self.cnet(image1), [self.hidden_dim, self.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        context_terms = self.update_block.gru.context_terms(inp) if fast else None
        coords0 = coords_grid(batch, image1.shape[-2] // 8, image1.shape[-1] // 8, image1.device)
        coords1 = coords0.clone()
        predictions = []
        flow_up = coords1
        for step in range(iters):
            coords1 = coords1.detach()
            with_mask = not (fast and test_mode) or step == iters - 1
            net, up_mask, delta = self.update_block(
                net, inp, lookup(coords1), coords1 - coords0, with_mask, context_terms
            )
            coords1 = coords1 + delta
            if with_mask:
                flow_up = upsample_flow(coords1 - coords0, up_mask)
                predictions.append(flow_up)
        if test_mode:
            return coords1 - coords0, flow_up
        return predictions

    @staticmethod
    def corr_volume_mib(shape: torch.Size | tuple[int, ...], num_levels: int = 4) -> float:
        """MiB of the float32 all-pairs correlation pyramid for images of ``shape`` (``B×3×H×W``)."""
        pixels = (shape[-2] // 8) * (shape[-1] // 8)
        return sum(shape[0] * pixels * pixels / 4**level for level in range(num_levels)) * 4 / 2**20
