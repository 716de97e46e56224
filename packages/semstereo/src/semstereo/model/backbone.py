"""MobileViTv2 backbone (timm) re-wrapped under the original names ``conv_stem``, ``block0`` .. ``block4``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import timm
import torch
from torch import nn

from semcommon.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, load_state_dict_into


def timm_to_feature_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm MobileViTv2 state dict (``stem.*``, ``stages.i.*`` or ``stages_i.*``) to :class:`Feature` keys.

    The classifier (``head.*``) and ``final_conv.*`` are dropped.
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("stem."):
            renamed["conv_stem." + key[len("stem.") :]] = value
            continue
        match = re.match(r"stages[._](\d)\.(.*)", key)
        if match:
            renamed[f"block{match.group(1)}.{match.group(2)}"] = value
    return renamed


def create_backbone(name: str) -> nn.Module:
    """``timm.create_model(name, features_only=True)``; names timm does not register (``mobilevitv2_025``, the
    demo's reduced width) are built from timm's MobileViTv2 recipe at that width multiplier (same module names)."""
    if timm.is_model(name):
        return timm.create_model(name, pretrained=False, features_only=True)
    match = re.fullmatch(r"mobilevitv2_(\d{3})", name)
    if match is None:
        raise ValueError(f"backbone {name!r} is not a MobileViTv2 model")
    from timm.models import build_model_with_cfg
    from timm.models.byobnet import ByobNet
    from timm.models.mobilevit import _mobilevitv2_cfg

    builder_log = logging.getLogger("timm.models._builder")
    level = builder_log.level
    builder_log.setLevel(logging.ERROR)  # "no pretrained configuration" notice: there are no weights to load
    try:
        return build_model_with_cfg(
            ByobNet,
            name,
            False,
            model_cfg=_mobilevitv2_cfg(int(match.group(1)) / 100),
            feature_cfg={"flatten_sequential": True},
            features_only=True,
        )
    finally:
        builder_log.setLevel(level)


class Feature(nn.Module):
    """Shared-weight backbone: ``B×3×H×W`` -> 5 maps at 1/2 .. 1/32 (``widths`` channels; H, W multiples of 32).

    Built with ``timm.create_model(name, features_only=True, pretrained=False)``; ImageNet weights come only from
    a local file (``pretrained``: a timm checkpoint of the same model).
    """

    def __init__(self, backbone: str = "mobilevitv2_100", pretrained: str | Path | None = None) -> None:
        super().__init__()
        model = create_backbone(backbone)
        self.conv_stem = model.stem
        self.block0 = nn.Sequential(*model.stages_0)
        self.block1 = nn.Sequential(*model.stages_1)
        self.block2 = nn.Sequential(*model.stages_2)
        self.block3 = nn.Sequential(*model.stages_3)
        self.block4 = nn.Sequential(*model.stages_4)
        if pretrained is not None:
            self.load_imagenet(pretrained)

    def load_imagenet(self, path: str | Path) -> None:
        """Load ImageNet weights from a local timm checkpoint (classifier keys ignored, everything else strict)."""
        state = timm_to_feature_keys(extract_state_dict(load_checkpoint(path)))
        if not state:
            raise CheckpointError(f"{path}: no MobileViTv2 backbone keys (stem.*, stages.*) found")
        load_state_dict_into(self, state, strict=True, source=str(path))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x2 = self.block0(self.conv_stem(x))
        x4 = self.block1(x2)
        x8 = self.block2(x4)
        x16 = self.block3(x8)
        x32 = self.block4(x16)
        return [x2, x4, x8, x16, x32]
