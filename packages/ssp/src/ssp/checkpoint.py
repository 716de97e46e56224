"""Loading the authors' checkpoint formats (always ``weights_only=True``).

Recognised files:

- training checkpoints ``<name>.pth.tar`` of the image or the video model: ``{"model": state_dict, "optimizer",
  "scheduler", "epoch", ...}``, keys ``backbone.*``/``head.*`` (image) or ``base_model.*``/``flow_model.*``/
  ``registrator.*``/``sim.*`` (video), optionally prefixed ``module.`` (DataParallel / DDP);
- a bare state dict of either model;
- SAM2 checkpoints ``sam2_hiera_<size>.pt``: ``{"model": {...}}``, the ``image_encoder.trunk.*`` entries initialise
  the Hiera backbone (``strict=False`` as in the original: other SAM2 weights are dropped);
- RAFT ``raft-things.pth``: keys ``module.fnet.*`` ... (prefix stripped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from semcommon.checkpoint import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    load_state_dict_into,
    strip_prefix,
)
from ssp.config import HIERA_SIZES, ImageModelConfig, VideoModelConfig, train_config_from_plain
from ssp.model.hiera import Hiera
from ssp.model.image_model import HieraUperNet
from ssp.model.raft import RAFT
from ssp.model.ssp import SSPVideoModel

__all__ = ["CheckpointError", "detect_kind", "load_pretrained", "load_sam2_backbone", "read_state_dict"]

SAM2_TRUNK_PREFIX = "image_encoder.trunk."


def read_state_dict(path: str | Path, obj: Any = None) -> dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint file (wrapper dicts unwrapped, ``module.`` stripped); ``obj``: already read.

    Raises :class:`CheckpointError` naming the file and the first entry that is not a tensor or holds NaN / Inf.
    """
    obj = load_checkpoint(path) if obj is None else obj
    state = extract_state_dict(obj, keys=("model", "state_dict", "model_state_dict"))
    if any(k.startswith("module.") for k in state):
        state = strip_prefix(state, "module.")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor ({type(value).__name__})")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: entry {key!r} holds NaN or Inf values")
    return state


def detect_kind(state: dict[str, torch.Tensor]) -> str:
    """``"video"``, ``"image"``, ``"sam2"`` or ``"raft"`` from the key names."""
    keys = list(state)
    if any(k.startswith("base_model.") for k in keys):
        return "video"
    if any(k.startswith(SAM2_TRUNK_PREFIX) for k in keys):
        return "sam2"
    if any(k.startswith("backbone.") for k in keys) and any(k.startswith("head.") for k in keys):
        return "image"
    if any(k.startswith("fnet.") for k in keys) and any(k.startswith("update_block.") for k in keys):
        return "raft"
    raise CheckpointError(f"unrecognised checkpoint: first keys {keys[:3]} match no SSP model")


def _image_config_from_state(state: dict[str, torch.Tensor], prefix: str = "") -> ImageModelConfig:
    embed_dim = state[f"{prefix}backbone.pos_embed"].shape[1]
    blocks = f"{prefix}backbone.blocks."
    depth = len({k[len(blocks) :].split(".")[0] for k in state if k.startswith(blocks)})
    for name, (hiera, _) in HIERA_SIZES.items():
        if hiera.embed_dim == embed_dim and sum(hiera.stages) == depth:
            n_classes = state[f"{prefix}head.classifier.weight"].shape[0]
            return ImageModelConfig(checkpoint_model=name, n_classes=n_classes)
    raise CheckpointError(f"no Hiera size with embed_dim {embed_dim} and {depth} blocks; build the model and pass it")


def load_sam2_backbone(path: str | Path, backbone: Hiera) -> Hiera:
    """Initialise a Hiera trunk from a SAM2 checkpoint (trunk keys only; every trunk key must fit)."""
    _load_trunk(read_state_dict(path), backbone, str(path))
    return backbone


def _load_trunk(state: dict[str, torch.Tensor], backbone: Hiera, source: str) -> None:
    trunk = {k[len(SAM2_TRUNK_PREFIX) :]: v for k, v in state.items() if k.startswith(SAM2_TRUNK_PREFIX)}
    if not trunk:
        raise CheckpointError(f"{source}: no '{SAM2_TRUNK_PREFIX}*' keys, not a SAM2 checkpoint")
    load_state_dict_into(backbone, trunk, strict=True, source=source)


def load_pretrained(
    path: str | Path, model: nn.Module | None = None, strict: bool = True, kind: str | None = None
) -> nn.Module:
    """Load an authors' checkpoint into ``model`` (built from the checkpoint when None) and return it in eval mode.

    ``kind`` forces ``"video"``, ``"image"``, ``"sam2"`` or ``"raft"`` (default: detected from the keys). A SAM2 file
    initialises the backbone of an image model (default Hiera-S UperNet) or of a bare :class:`Hiera`. With ``strict``
    any missing / unexpected / mis-shaped key raises :class:`CheckpointError` naming them (e.g. a checkpoint of
    another model).
    """
    obj = load_checkpoint(path)
    state = read_state_dict(path, obj)
    kind = kind or detect_kind(state)
    if kind == "sam2":
        target = model if model is not None else HieraUperNet()
        _load_trunk(state, target.backbone if isinstance(target, HieraUperNet) else target, str(path))
        return target.eval()
    if model is None:
        saved = obj.get("config") if isinstance(obj, dict) else None
        model = _build_for(kind, state, saved if isinstance(saved, dict) else None, str(path))
    load_state_dict_into(model, state, strict=strict, source=str(path))
    return model.eval()


def _build_for(kind: str, state: dict[str, torch.Tensor], saved: dict[str, Any] | None, source: str) -> nn.Module:
    """The model a state dict belongs to: from our checkpoints' saved training config when present, else from the
    key names and shapes (the authors' files)."""
    if kind == "raft":
        return RAFT()
    image = video = None
    if saved is not None:
        try:
            config = train_config_from_plain(saved)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: saved config does not describe an SSP model ({exc})") from exc
        image, video = config.image_model, config.video_model_cfg
    if kind == "image":
        return HieraUperNet(image or _image_config_from_state(state))
    if kind == "video":
        if video is None:
            registrator = "disk" if any(k.startswith("registrator.disk.") for k in state) else "identity"
            sim_op = "conv" if any(k.startswith("sim.") for k in state) else "cossim"
            video = VideoModelConfig(k_registrator_model=registrator, sim_op=sim_op)
        return SSPVideoModel(
            video,
            image or _image_config_from_state(state, "base_model."),
            with_flow_model=any(k.startswith("flow_model.") for k in state),
        )
    raise ValueError(f"kind: expected video | image | sam2 | raft, got {kind!r}")
