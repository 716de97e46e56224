"""Configuration dataclasses with the paper's defaults (SGDepth multi-task net, GLA encoder, training recipe).

Defaults follow the authors' command line (spec §g): ResNet50 depth/segmentation encoder, ResNet18 pose encoder,
decoder split after the first step, 4 depth resolutions, gradient scales 0.9 / 0.1 into the shared part.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RESNET_DEPTHS",
    "SEG_MASK_STATIC_CLASSES",
    "GLAEncoderConfig",
    "SGDepthConfig",
    "TrainingConfig",
]

RESNET_DEPTHS = (18, 34, 50, 101, 152)

# Cityscapes trainIds the shipped model maps to 0 in ('segmentation_mask', 0): road, sidewalk, building, wall, fence,
# sky and the never-supervised class 19. Every other class becomes 1 in the authors' binary mask.
SEG_MASK_STATIC_CLASSES = (0, 1, 2, 3, 4, 10, 19)

_LABEL_MAP_MODES = ("binary", "classes")


def _from_dict(cls: type, values: dict[str, Any], ignore_unknown: bool) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown and not ignore_unknown:
        raise ValueError(f"{cls.__name__}.from_dict: unknown keys {unknown}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}
    return cls(**kwargs)


@dataclass(frozen=True)
class SGDepthConfig:
    """Options of the SGDepth multi-task network (``models/sgdepth.py``).

    * ``num_layers`` / ``num_layers_pose``: ResNet depth of the shared and of the pose encoder.
    * ``split_pos``: the original CLI value; the first ``max(2·split_pos−1, 0)`` decoder steps are shared.
    * ``resolutions_depth``: number of disparity outputs ('disp', 0..r−1), full resolution first.
    * ``grad_scale_depth`` / ``grad_scale_seg``: ScaledSplit backward scales into the shared part (the class defaults
      of the original are 0.95/0.05; the CLI and the paper use 0.9/0.1).
    * ``num_classes``: segmentation logits (19 Cityscapes classes + the never-supervised class 19).
    * ``min_depth`` / ``max_depth``: disparity-to-depth scaling used by losses and evaluation.
    * ``attention_blocks``: width blocks of the block self-attention; 1 (whole map) is what the authors' code does,
      the figure shows several blocks.
    * ``sdcon_label_map``: what ('segmentation_mask', 0) holds. ``"binary"`` (default, parity) is the authors'
      mask — classes in ``SEG_MASK_STATIC_CLASSES`` → 0, the rest → 1 — with which l_SDcon is identically zero;
      ``"classes"`` is the class label map (argmax, those classes set to 0), which is what the paper intends.
    * ``keep_unused_params``: keep the never-used ``dilated_conv`` / ``convx`` encoder parameters (default True, so
      that the state dict matches the authors' checkpoints; False saves ~37.9 M parameters for ResNet50).
    """

    num_layers: int = 50
    num_layers_pose: int = 18
    split_pos: int = 1
    resolutions_depth: int = 4
    grad_scale_depth: float = 0.9
    grad_scale_seg: float = 0.1
    num_classes: int = 20
    min_depth: float = 0.1
    max_depth: float = 100.0
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    attention_blocks: int = 1
    sdcon_label_map: str = "binary"
    seg_mask_static_classes: tuple[int, ...] = SEG_MASK_STATIC_CLASSES
    keep_unused_params: bool = True
    height: int = 192
    width: int = 640

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_layers_pose"):
            if getattr(self, name) not in RESNET_DEPTHS:
                raise ValueError(f"{name}: {getattr(self, name)} is not one of {RESNET_DEPTHS}")
        if not 0 <= self.split_pos <= 4:
            raise ValueError(f"split_pos: {self.split_pos} is outside 0..4")
        if not 1 <= self.resolutions_depth <= 4:
            raise ValueError(f"resolutions_depth: {self.resolutions_depth} is outside 1..4")
        if len(self.decoder_channels) != 5:
            raise ValueError(f"decoder_channels: expected 5 values, got {self.decoder_channels}")
        if self.attention_blocks < 1:
            raise ValueError(f"attention_blocks: must be >= 1, got {self.attention_blocks}")
        if self.sdcon_label_map not in _LABEL_MAP_MODES:
            raise ValueError(f"sdcon_label_map: {self.sdcon_label_map!r} is not one of {_LABEL_MAP_MODES}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"min_depth/max_depth: need 0 < min < max, got {self.min_depth}/{self.max_depth}")

    @property
    def shared_decoder_steps(self) -> int:
        """Number of decoder steps in ``common`` (the original's internal split position)."""
        return max(2 * self.split_pos - 1, 0)

    @classmethod
    def from_dict(cls, values: dict[str, Any], ignore_unknown: bool = False) -> SGDepthConfig:
        """Build from a mapping (e.g. a manifest's ``config``); unknown keys raise unless ``ignore_unknown``."""
        return _from_dict(cls, values, ignore_unknown)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GLAEncoderConfig:
    """The GLA ResNet encoder of the shipped source (``ResNetEncoder(backbone='resnet50')``, not wired into SGDepth).

    ``glam_after`` names the stages followed by a Global-Local Attention module (their outputs feed the next stage).
    """

    backbone: str = "resnet50"
    glam_after: tuple[str, ...] = ("layer3", "layer4")
    num_instances: int = 8
    num_heads: int = 4
    reduction: int = 4

    def __post_init__(self) -> None:
        depths = {f"resnet{d}" for d in RESNET_DEPTHS}
        if self.backbone not in depths:
            raise ValueError(f"backbone: {self.backbone!r} is not one of {sorted(depths)}")
        bad = [s for s in self.glam_after if s not in ("layer1", "layer2", "layer3", "layer4")]
        if bad:
            raise ValueError(f"glam_after: unknown stages {bad}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], ignore_unknown: bool = False) -> GLAEncoderConfig:
        return _from_dict(cls, values, ignore_unknown)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser and schedule of the paper's training (spec §d, CLI defaults of §g), read by
    :class:`sgdepth_pkd.train.SGDepthTask`.

    The frame steps the scheduler once per optimizer step, so StepLR's step size is ``scheduler_step_size`` epochs
    of ``batches_per_epoch`` steps. ``scheduler_gamma_is_lr`` reproduces SGDepth's quirk of passing the learning
    rate as StepLR gamma (the lr drops ×1e-4 at epoch 15; that is how the published model was trained); it is off by
    default (gamma 0.1).
    """

    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    num_epochs: int = 20
    batches_per_epoch: int = 9645
    scheduler_step_size: int = 15
    scheduler_gamma_is_lr: bool = False

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError(f"learning_rate/weight_decay: need lr > 0, wd >= 0, got {self.learning_rate}")
        if self.batches_per_epoch < 1 or self.scheduler_step_size < 1 or self.num_epochs < 1:
            raise ValueError("batches_per_epoch, scheduler_step_size and num_epochs must be >= 1")

    @property
    def scheduler_gamma(self) -> float:
        return self.learning_rate if self.scheduler_gamma_is_lr else 0.1
