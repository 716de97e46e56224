"""Loading the authors' SemStereo checkpoints (and our own) into :class:`semstereo.model.SemStereo`.

Authors' format (``main_us3d.py`` / ``main_whu.py``, saved from ``nn.DataParallel``)::

    {"epoch": int, "model": {"module.<key>": tensor, ...}, "optimizer": {...}}

Ours (``RUN_DIR/checkpoints/last.pt`` of ``semstereo train``): ``{"model": state dict, "config": TrainConfig as
plain data, "optimizer", ...}``; its ``config`` rebuilds the exact model (width, stage, variant, ranges).
Also accepted: a bare state dict, with or without the ``module.`` prefix, or under ``"state_dict"``.
Files are read with ``torch.load(weights_only=True)`` (or safetensors).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from semcommon.checkpoint import (
    CheckpointError,
    LoadReport,
    extract_state_dict,
    load_checkpoint,
    load_state_dict_into,
    save_checkpoint,
    strip_prefix,
)
from semcommon.training import load_config
from semstereo.config import BACKBONE_WIDTHS, SemStereoConfig, TrainConfig
from semstereo.model.semstereo import SemStereo

STEM_KEY = "feature.conv_stem.conv.weight"
PREFIXES = ("module.", "model.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The SemStereo state dict inside a checkpoint file, wrapper and ``module.`` prefixes removed."""
    return clean_state_dict(extract_state_dict(load_checkpoint(path), keys=("model", "state_dict", "model_state_dict")))


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.`` (DataParallel) or ``model.`` prefix shared by every key."""
    for prefix in PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = strip_prefix(state, prefix)
    return state


def infer_backbone(state: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> str:
    """The MobileViTv2 width whose stem matches the checkpoint (stem channels = stage-0 width / 2)."""
    if STEM_KEY not in state:
        sample = ", ".join(list(state)[:3])
        raise CheckpointError(f"{path}: not a SemStereo checkpoint (no {STEM_KEY}; first keys: {sample})")
    stem = int(state[STEM_KEY].shape[0])
    for name, widths in BACKBONE_WIDTHS.items():
        if widths[0] == 2 * stem:
            return name
    raise CheckpointError(f"{path}: {STEM_KEY} has {stem} channels, which matches no MobileViTv2 width")


def _flatten(data: dict, prefix: str = "") -> list[str]:
    items = []
    for key, value in data.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={json.dumps(value)}")
    return items


def train_config_of(checkpoint: object, path: str | Path = "checkpoint") -> TrainConfig | None:
    """The :class:`TrainConfig` stored by ``semstereo train`` in a checkpoint, or ``None`` (authors' files)."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("config"), dict):
        return None
    try:
        return load_config(TrainConfig, None, _flatten(checkpoint["config"]))
    except ValueError as exc:
        raise CheckpointError(f"{path}: its stored config is not a SemStereo training config ({exc})") from None


def load_pretrained(
    path: str | Path,
    config: SemStereoConfig | None = None,
    variant: str = "us3d",
    strict: bool = True,
    map_location: str | torch.device = "cpu",
    stage: str | None = None,
) -> SemStereo:
    """Build SemStereo and load the weights of ``path`` (authors' ``checkpoint_0000xx.ckpt`` or ours).

    Without ``config``: our checkpoints rebuild the model they were trained with; for the authors' files the paper
    configuration of ``variant`` ("us3d": maxdisp 64, "whu": maxdisp 128) is used, with the backbone width inferred
    from the checkpoint. ``stage="attention"`` builds the stage-1 model (no concatenation branch; the authors'
    stage-1 files hold the same keys), ``"full"`` the stage-2 one. With ``strict`` any missing, unexpected or
    mis-shaped key raises a one-line :class:`CheckpointError` naming the keys; otherwise the report is attached as
    ``model.load_report``. The model is returned in eval mode.
    """
    if stage not in (None, "attention", "full"):
        raise ValueError(f"load_pretrained: stage must be 'attention' or 'full', got {stage!r}")
    checkpoint = load_checkpoint(path)
    state = clean_state_dict(extract_state_dict(checkpoint, keys=("model", "state_dict", "model_state_dict")))
    if config is None:
        train_config = train_config_of(checkpoint, path)
        if train_config is not None:
            config = train_config.model_config()
        else:
            backbone = infer_backbone(state, path)
            config = SemStereoConfig(variant=variant, maxdisp=128 if variant == "whu" else 64, backbone=backbone)
    if stage is not None:
        config = replace(config, att_weights_only=stage == "attention")
    model = SemStereo(config)
    report: LoadReport = load_state_dict_into(model, state, strict=strict, source=str(path))
    model.load_report = report
    return model.to(map_location).eval()


def save_pretrained(model: SemStereo, path: str | Path, epoch: int | None = None) -> None:
    """Save in the authors' layout (``{"epoch", "model"}``, keys without ``module.``), atomically."""
    payload: dict[str, object] = {"model": model.state_dict()}
    if epoch is not None:
        payload["epoch"] = epoch
    save_checkpoint(payload, path)


def read_train_config(path: str | Path) -> TrainConfig | None:
    """The training config stored in one of our checkpoints (``None`` for the authors' files)."""
    return train_config_of(load_checkpoint(path), path)
