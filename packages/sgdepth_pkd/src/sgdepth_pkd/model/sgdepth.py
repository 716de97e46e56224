"""SGDepth multi-task network: shared encoder + decoder head, gradient-scaled split, depth / segmentation tails, pose.

State-dict prefixes follow the original: ``common.`` (encoder + shared decoder steps), ``depth.``, ``seg.``, ``pose.``.
Two interfaces:

* the original batch-dict forward ``model(batch)`` — ``batch`` is a sequence of per-dataset dicts with keys
  ``('color_aug', f, 0)`` (f ∈ {0, −1, +1}) and ``'purposes'``; it returns one output dict per dataset with the original
  keys ``('disp', r)``, ``('segmentation_logits', 0)``, ``('segmentation_mask', 0)``, ``('cam_T_cam', 0, ±1)``;
* tensor methods ``predict``, ``predict_disparity``, ``predict_disparities``, ``predict_segmentation``,
  ``predict_pose``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.decoder import NUM_DECODER_STEPS, MultiResDepth, MultiResSeg, PartialDecoder, decoder_plan
from sgdepth_pkd.model.encoder import ResnetEncoder
from sgdepth_pkd.model.fast import FastCache, FastOutputs, FastSGDepth, check_impl
from sgdepth_pkd.model.pose import PoseNet

__all__ = ["SGDepth", "ScaledSplit", "build_sgdepth", "has_purpose", "segmentation_mask"]

Slots = tuple[torch.Tensor, ...]
_STRIDE = 32


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies every incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx: Any, scale: float, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.scale = scale
        return tuple(x.view_as(x) for x in inputs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[Any, ...]:
        return (None, *(None if g is None else g * ctx.scale for g in grads))


class ScaledSplit(nn.Module):
    """Return one identical copy of the input tuple per scale; gradients of copy i are multiplied by ``scales[i]``."""

    def __init__(self, *scales: float) -> None:
        super().__init__()
        self.scales = scales

    def forward(self, slots: Slots) -> tuple[Slots, ...]:
        return tuple(_ScaleGrad.apply(scale, *slots) for scale in self.scales)

    def extra_repr(self) -> str:
        return f"scales={self.scales}"


class SGDepthCommon(nn.Module):
    """Shared part: ResNet encoder (+ block self-attention), the first decoder steps, and the scaled split."""

    def __init__(self, config: SGDepthConfig) -> None:
        super().__init__()
        self.encoder = ResnetEncoder(
            config.num_layers, 1, config.attention_blocks, keep_unused_params=config.keep_unused_params
        )
        self.plan = decoder_plan(tuple(reversed(self.encoder.num_ch_enc)), config.decoder_channels)
        self.decoder = PartialDecoder(self.plan, 0, config.shared_decoder_steps)
        self.split = ScaledSplit(config.grad_scale_depth, config.grad_scale_seg)

    def forward(self, images: torch.Tensor) -> tuple[Slots, Slots]:
        """B×3×H×W → (depth-branch slots, segmentation-branch slots), each (1/16, …, 1/1)-resolution features."""
        features = self.encoder(images)
        return self.split(self.decoder(tuple(reversed(features))))


class SGDepthDepth(nn.Module):
    """Depth tail: the remaining decoder steps + sigmoid disparity heads for the finest ``resolutions`` slots."""

    def __init__(self, common: SGDepthCommon, config: SGDepthConfig) -> None:
        super().__init__()
        self.decoder = PartialDecoder(common.plan, config.shared_decoder_steps, NUM_DECODER_STEPS)
        finest_first = tuple(reversed(config.decoder_channels))
        self.multires = MultiResDepth(finest_first[: config.resolutions_depth])

    def forward(self, slots: Slots) -> tuple[torch.Tensor, ...]:
        return self.multires(self.decoder(slots))


class SGDepthSeg(nn.Module):
    """Segmentation tail: the remaining decoder steps + a logits head at full resolution."""

    def __init__(self, common: SGDepthCommon, config: SGDepthConfig) -> None:
        super().__init__()
        self.decoder = PartialDecoder(common.plan, config.shared_decoder_steps, NUM_DECODER_STEPS)
        self.multires = MultiResSeg(config.decoder_channels[-1], config.num_classes)

    def forward(self, slots: Slots) -> torch.Tensor:
        return self.multires(self.decoder(slots))


def segmentation_mask(logits: torch.Tensor, static_classes: Sequence[int], mode: str = "binary") -> torch.Tensor:
    """B×C×H×W logits → B×1×H×W int64 ('segmentation_mask', 0).

    ``binary`` (the authors'): classes in ``static_classes`` → 0, all others → 1. ``classes``: the argmax label map
    with ``static_classes`` set to 0 (the label map l_SDcon needs).
    """
    labels = logits.argmax(dim=1, keepdim=True)
    static = torch.isin(labels, torch.tensor(list(static_classes), device=labels.device))
    if mode == "binary":
        return (~static).long()
    if mode == "classes":
        return labels.masked_fill(static, 0)
    raise ValueError(f"mode: {mode!r} is not 'binary' or 'classes'")


def has_purpose(dataset: Mapping[Any, Any], purpose: str) -> bool:
    """Whether any entry of ``dataset['purposes']`` starts with ``purpose`` (entries: strings or sequences)."""
    for entry in dataset.get("purposes", ()):
        first = entry if isinstance(entry, str) else (entry[0] if len(entry) else None)
        if first == purpose:
            return True
    return False


def _check_images(name: str, images: Any, channels: int = 3) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != channels:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected a B×{channels}×H×W tensor, got {shape}")
    if images.shape[-2] % _STRIDE or images.shape[-1] % _STRIDE:
        raise ValueError(f"{name}: height and width must be multiples of {_STRIDE}, got {tuple(images.shape[-2:])}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


class SGDepth(nn.Module):
    """The SGDepth multi-task network (paper configuration by default: ResNet50 / ResNet18 pose, split 1, 4 scales)."""

    def __init__(self, config: SGDepthConfig | None = None) -> None:
        super().__init__()
        self.config = config or SGDepthConfig()
        self.common = SGDepthCommon(self.config)
        self.depth = SGDepthDepth(self.common, self.config)
        self.seg = SGDepthSeg(self.common, self.config)
        self.pose = PoseNet(self.config.num_layers_pose, self.config.attention_blocks, self.config.keep_unused_params)
        self._fast_cache = FastCache()

    # ----------------------------------------------------------------------------------------------- tensor API
    # ``impl``: "fast" (default) = the exact fast path of sgdepth_pkd.model.fast, taken in eval mode with autograd
    # off (BN folding needs running statistics; the cached folded weights carry no gradient); otherwise, and with
    # "reference", the authors' eager operations.
    def fast_path(self) -> FastSGDepth:
        """The cached exact fast path of this model (rebuilt after any weight change); inference only."""
        return self._fast_cache.get(self)

    def _fast(self, impl: str, images: torch.Tensor, depth: bool, seg: bool) -> FastOutputs | None:
        if check_impl(impl) != "fast" or self.training or torch.is_grad_enabled():
            return None
        return self._fast_cache.get(self)(images, depth, seg)

    def encoder_features(self, images: torch.Tensor, impl: str = "fast") -> tuple[torch.Tensor, ...]:
        """B×3×H×W → the shared encoder's (l0, BSA(l1), …, BSA(l4)) (fast: BN folded, eval mode with autograd off)."""
        _check_images("images", images)
        if check_impl(impl) == "fast" and not self.training and not torch.is_grad_enabled():
            return self._fast_cache.get(self).encoder(images)
        return self.common.encoder(images)

    def predict_disparities(self, images: torch.Tensor, impl: str = "fast") -> tuple[torch.Tensor, ...]:
        """B×3×H×W ImageNet-normalised → sigmoid disparities ('disp', r): B×1×H/2^r×W/2^r, r = 0..resolutions−1."""
        _check_images("images", images)
        fast = self._fast(impl, images, depth=True, seg=False)
        if fast is not None:
            return fast[0]
        depth_slots, _ = self.common(images)
        return self.depth(depth_slots)

    def predict_disparity(self, images: torch.Tensor, impl: str = "fast") -> torch.Tensor:
        """B×3×H×W ImageNet-normalised → B×1×H×W sigmoid disparity ('disp', 0)."""
        return self.predict_disparities(images, impl)[0]

    def predict_segmentation(self, images: torch.Tensor, impl: str = "fast") -> torch.Tensor:
        """B×3×H×W ImageNet-normalised → B×num_classes×H×W raw logits ('segmentation_logits', 0)."""
        _check_images("images", images)
        fast = self._fast(impl, images, depth=False, seg=True)
        if fast is not None:
            return fast[1]
        _, seg_slots = self.common(images)
        return self.seg(seg_slots)

    def predict(self, images: torch.Tensor, impl: str = "fast") -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Both tasks from one pass through the shared part: (disparities as :meth:`predict_disparities`, logits as
        :meth:`predict_segmentation`)."""
        _check_images("images", images)
        fast = self._fast(impl, images, depth=True, seg=True)
        if fast is not None:
            return fast[0], fast[1]
        depth_slots, seg_slots = self.common(images)
        return self.depth(depth_slots), self.seg(seg_slots)

    def compiled_predict(self) -> Any:
        """``torch.compile`` of :meth:`predict` on the reference operations (approximate mode, built once per model
        and dropped with the fast-path cache on copies)."""
        cache = self._fast_cache
        if cache.compiled is None:
            cache.compiled = torch.compile(partial(SGDepth.predict, self, impl="reference"))
        return cache.compiled

    def predict_pose(self, first: torch.Tensor, second: torch.Tensor, invert: bool) -> torch.Tensor:
        """Two B×3×H×W frames → B×1×1×4×4 transform of the pose net on cat(first, second) (``invert`` as original)."""
        _check_images("first", first)
        _check_images("second", second)
        return self.pose(torch.cat((first, second), dim=1), invert)

    def segmentation_mask(self, logits: torch.Tensor) -> torch.Tensor:
        """('segmentation_mask', 0) from logits in the configured ``sdcon_label_map`` mode (B×1×H×W int64)."""
        return segmentation_mask(logits, self.config.seg_mask_static_classes, self.config.sdcon_label_map)

    # ------------------------------------------------------------------------------------------ original forward
    def forward(self, batch: Sequence[Mapping[Any, Any]], impl: str = "reference") -> list[dict[Any, torch.Tensor]]:
        """Per-dataset dicts → per-dataset output dicts (all current frames share one pass through ``common``).

        ``impl="fast"`` (eval mode, autograd off; else the reference runs): the exact fast path, which runs the
        segmentation tail once and takes ('segmentation_mask', 0) from its logits.
        """
        datasets = self._check_batch(batch)
        frames = [dataset["color_aug", 0, 0] for dataset in datasets]
        sizes = [frame.shape[0] for frame in frames]
        images = torch.cat(frames)
        fast = self._fast(impl, images, depth=any(has_purpose(d, "depth") for d in datasets), seg=True)
        if fast is not None:
            return self._fast_outputs(datasets, fast, sizes)
        depth_slots, seg_slots = self.common(images)
        depth_parts = _unpack(depth_slots, sizes)
        seg_parts = _unpack(seg_slots, sizes)
        return [
            self._dataset_outputs(dataset, depth_part, seg_part)
            for dataset, depth_part, seg_part in zip(datasets, depth_parts, seg_parts, strict=True)
        ]

    def _dataset_outputs(self, dataset: Mapping[Any, Any], depth_slots: Slots, seg_slots: Slots) -> dict:
        outputs: dict[Any, torch.Tensor] = {}
        if has_purpose(dataset, "depth"):
            for res, disp in enumerate(self.depth(depth_slots)):
                outputs["disp", res] = disp
            with torch.no_grad():
                outputs["segmentation_mask", 0] = self.segmentation_mask(self.seg(depth_slots))
            outputs.update(self._poses(dataset))
        if has_purpose(dataset, "segmentation"):
            outputs["segmentation_logits", 0] = self.seg(seg_slots)
        return outputs

    def _fast_outputs(self, datasets: list[Mapping[Any, Any]], fast: FastOutputs, sizes: list[int]) -> list[dict]:
        disps, logits, mask = fast
        disp_parts = _unpack(disps, sizes) if disps is not None else [None] * len(sizes)
        logit_parts, mask_parts = logits.split(sizes), mask.split(sizes)
        results = []
        for dataset, disp, part_logits, part_mask in zip(datasets, disp_parts, logit_parts, mask_parts, strict=True):
            outputs: dict[Any, torch.Tensor] = {}
            if has_purpose(dataset, "depth"):
                outputs.update({("disp", res): d for res, d in enumerate(disp)})
                outputs["segmentation_mask", 0] = part_mask
                outputs.update(self._poses(dataset))
            if has_purpose(dataset, "segmentation"):
                outputs["segmentation_logits", 0] = part_logits
            results.append(outputs)
        return results

    def _poses(self, dataset: Mapping[Any, Any]) -> dict[Any, torch.Tensor]:
        current = dataset["color_aug", 0, 0]
        poses = {}
        if ("color_aug", -1, 0) in dataset:
            poses["cam_T_cam", 0, -1] = self.pose(torch.cat((dataset["color_aug", -1, 0], current), dim=1), True)
        if ("color_aug", 1, 0) in dataset:
            poses["cam_T_cam", 0, 1] = self.pose(torch.cat((current, dataset["color_aug", 1, 0]), dim=1), False)
        return poses

    @staticmethod
    def _check_batch(batch: Sequence[Mapping[Any, Any]]) -> list[Mapping[Any, Any]]:
        if isinstance(batch, Mapping):
            batch = (batch,)
        datasets = list(batch)
        if not datasets:
            raise ValueError("batch: expected at least one dataset dict")
        size = None
        for index, dataset in enumerate(datasets):
            if ("color_aug", 0, 0) not in dataset:
                raise ValueError(f"batch[{index}]: missing key ('color_aug', 0, 0)")
            current = dataset["color_aug", 0, 0]
            for offset in (0, -1, 1):
                if ("color_aug", offset, 0) not in dataset:
                    continue
                name = f"batch[{index}][('color_aug', {offset}, 0)]"
                frame = dataset["color_aug", offset, 0]
                _check_images(name, frame)
                if frame.shape != current.shape:
                    raise ValueError(
                        f"{name}: shape {tuple(frame.shape)} differs from the current frame's {tuple(current.shape)}"
                    )
            if size is not None and current.shape[-2:] != size:
                raise ValueError(
                    f"batch[{index}][('color_aug', 0, 0)]: size {tuple(current.shape[-2:])} differs from "
                    f"batch[0]'s {tuple(size)} (all datasets share one encoder pass)"
                )
            size = current.shape[-2:]
        return datasets


def _unpack(slots: Slots, sizes: list[int]) -> list[Slots]:
    """Split every slot along the batch axis: slots[layer][dataset] → parts[dataset][layer]."""
    per_layer = [slot.split(sizes) for slot in slots]
    return [tuple(layer[i] for layer in per_layer) for i in range(len(sizes))]


def build_sgdepth(config: SGDepthConfig | None = None) -> SGDepth:
    """The SGDepth network with random weights (see ``sgdepth_pkd.checkpoint`` for loading weights)."""
    return SGDepth(config)
