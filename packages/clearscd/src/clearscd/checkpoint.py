"""Loading the authors' checkpoints.

Our training runs save ``RUN_DIR/checkpoints/last.pt``: a dict whose ``model`` entry is the state dict and whose
``config`` entry holds the model config (used to rebuild the same network). The authors' ``main.py`` saves
``{"state_dict": model.state_dict()}`` as ``<epoch>_<metric>_checkpoint.pth.tar``
(457 keys: 36 queue buffers, then ``encoder.``, ``decoder.``, ``head_seg.``, ``head_bcd.``, ``proj_head.``).
:func:`load_pretrained` accepts that file, a bare state dict, other common wrappers (``model``, ``model_state_dict``,
``net``) and ``module.`` / ``model.`` prefixes (DataParallel / wrapper modules); it always reads with
``weights_only=True``. ImageNet weights for the encoder alone (lukemelas ``efficientnet-b0`` names, e.g.
``efficientnet-b0-355c32eb.pth``) load with :func:`load_encoder_weights` from a local file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from clearscd.config import ClearSCDConfig
from clearscd.model.clearscd import ClearSCD, build_clearscd
from semcommon.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, load_state_dict_into

__all__ = ["CheckpointError", "checkpoint_config", "load_encoder_weights", "load_pretrained", "normalise_state_dict"]

_PREFIXES = ("module.", "model.")
_OWN_ROOTS = ("encoder.", "decoder.", "head_seg.", "head_bcd.", "proj_head.", "queue_", "ptr_")


def normalise_state_dict(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``model.``, possibly nested) and check the keys look like ClearSCD's."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        while key.startswith(_PREFIXES) and not key.startswith(_OWN_ROOTS):
            key = key.split(".", 1)[1]
        out[key] = value
    if not any(k.startswith(_OWN_ROOTS) for k in out):
        shown = ", ".join(list(out)[:4])
        raise CheckpointError(
            f"{source} is not a ClearSCD checkpoint (no encoder./decoder./head_* keys; keys: {shown})"
        )
    for key, value in out.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{source}: tensor {key} contains NaN or infinite values")
    return out


def load_pretrained(
    path: str | Path,
    config: ClearSCDConfig | dict | str | None = None,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> ClearSCD:
    """Build ClearSCD and load the authors' ``checkpoint.pth.tar`` (or any supported format, see the module
    docstring) into it. The model config is ``config`` (object, ``ours.json`` dict or JSON path) when given, else
    the one stored in our run checkpoints (``RUN_DIR/checkpoints/last.pt``), else the paper config.

    With ``strict`` (default, as the authors' ``test.py``) any missing, unexpected or mis-shaped key raises a
    one-line :class:`CheckpointError` naming the keys. Returns the model in eval mode.
    """
    obj = load_checkpoint(path, map_location=map_location)
    if config is None:
        config = checkpoint_config(obj)
    model = build_clearscd(config)
    try:
        state = extract_state_dict(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    state = normalise_state_dict(state, source=str(path))
    load_state_dict_into(model, state, strict=strict, source=str(path))
    return model.eval()


def checkpoint_config(obj: object) -> ClearSCDConfig | None:
    """The model config stored by ``clearscd train`` (``{"config": {"clearscd": {...}}}``), or None."""
    if isinstance(obj, Mapping) and isinstance(obj.get("config"), Mapping):
        stored = obj["config"].get("clearscd")
        if isinstance(stored, Mapping):
            return ClearSCDConfig.from_dict(dict(stored), source="checkpoint config")
    return None


def load_encoder_weights(model: ClearSCD, path: str | Path, strict: bool = True) -> None:
    """Load lukemelas EfficientNet-b0 ImageNet weights (keys ``_conv_stem.weight`` …; ``_fc.*`` ignored) from a
    local file into ``model.encoder``. This is the improvement of spec pitfall 1: the authors never load them."""
    obj = load_checkpoint(path)
    state = extract_state_dict(obj)
    state = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    if not any(k.startswith("_blocks.") for k in state):
        raise CheckpointError(f"{path} is not a lukemelas EfficientNet state dict (no _blocks.* keys)")
    load_state_dict_into(model.encoder, state, strict=strict, source=str(path))
