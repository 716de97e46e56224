"""Loading the authors' released weights (``weights_only=True``; nothing is downloaded).

| file | format | model |
|---|---|---|
| ``superpoint_v1.pth`` | plain ``state_dict`` (``conv1a.weight`` ...) | :class:`SuperPoint` |
| ``segnext_tiny_512x512_ade_160k.pth`` | mmseg ``{"meta", "state_dict"}``; ``backbone.*`` kept, ``decode_head.*`` dropped | :class:`SegNext` |
| ``checkpoint_best.tar`` | glue-factory ``{"model": {"matcher.<key>", ...}, "optimizer", "conf", "epoch", ...}`` | :class:`SemaGlue` |

``module.`` prefixes (DataParallel) are stripped everywhere; plain matcher state dicts are accepted too.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from semaglue.config import MatchingConfig, SegNextConfig, SemaGlueConfig, SuperPointConfig
from semaglue.model import Matching, SegNext, SemaGlue, SuperPoint
from semcommon.checkpoint import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    load_state_dict_into,
    strip_prefix,
)

ModelKind = Literal["superpoint", "segnext", "matcher"]
MODEL_KINDS: tuple[str, ...] = ("superpoint", "segnext", "matcher")
_MARKERS = {  # matcher first: our run checkpoints hold matcher.* and segment.* keys
    "matcher": "posenc.Wr.weight",
    "superpoint": "conv1a.weight",
    "segnext": "backbone.patch_embed1.proj.0.weight",
}


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    try:
        state = extract_state_dict(obj, keys=("model", "state_dict", "model_state_dict", "net"))
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return strip_prefix(state, "module.")


def matcher_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The matcher's entries of a glue-factory model state (``matcher.`` prefix stripped, other parts dropped)."""
    if any(k.startswith("matcher.") for k in state):
        return {k[len("matcher.") :]: v for k, v in state.items() if k.startswith("matcher.")}
    return dict(state)


def segnext_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` entries of an mmseg SegNeXt checkpoint (accepts a ``segment.`` pipeline prefix)."""
    state = strip_prefix(state, "segment.")
    if any(k.startswith("backbone.") for k in state):
        return {k: v for k, v in state.items() if k.startswith("backbone.")}
    return dict(state)


def detect_kind(state: dict[str, torch.Tensor]) -> ModelKind:
    """Which model a state dict belongs to, from marker keys."""
    for kind, marker in _MARKERS.items():
        cleaned = matcher_state(state) if kind == "matcher" else segnext_state(state) if kind == "segnext" else state
        if marker in cleaned:
            return kind  # type: ignore[return-value]
    shown = ", ".join(list(state)[:3])
    raise CheckpointError(f"cannot tell which model the checkpoint holds (first keys: {shown})")


def run_config(obj: Any, key: str, cls: type) -> Any:
    """The ``config[key]`` dataclass stored in our run checkpoints (``RUN_DIR/checkpoints/last.pt``), else None."""
    stored = obj.get("config") if isinstance(obj, dict) else None
    if isinstance(stored, dict) and isinstance(stored.get(key), dict):
        from semcommon.training import load_config

        data = stored[key]
        try:
            return load_config(cls, None, [f"{k}={json.dumps(v)}" for k, v in data.items()])
        except ValueError as exc:
            raise CheckpointError(f"checkpoint config [{key}]: {exc}") from None
    return None


def _num_layers(state: dict[str, torch.Tensor]) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(r"seg_tranformers\.(\d+)\.", k))}
    return max(indices) + 1 if indices else SemaGlueConfig().n_layers


def load_pretrained(
    path: str | Path,
    model: ModelKind | nn.Module | None = None,
    config: SuperPointConfig | SegNextConfig | SemaGlueConfig | None = None,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
    infer_layers: bool = True,
) -> nn.Module:
    """Load an authors' checkpoint into a model and return it in eval mode.

    ``model``: ``"superpoint" | "segnext" | "matcher"`` (a new model is built with ``config``; for a new matcher
    with ``infer_layers`` the layer count is read from the checkpoint), an existing module to load into, or
    ``None`` to detect the kind from the keys. A checkpoint of another model raises :class:`CheckpointError` naming the keys.
    """
    path = Path(path)
    obj = load_checkpoint(path, map_location=map_location)
    state = _state_dict(obj, path)
    if model is None:
        try:
            model = detect_kind(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    if config is None and model in MODEL_KINDS:
        classes = {"superpoint": SuperPointConfig, "segnext": SegNextConfig, "matcher": SemaGlueConfig}
        config = run_config(obj, model, classes[model])  # type: ignore[index]
    if isinstance(model, str):
        if model not in MODEL_KINDS:
            raise ValueError(f"model must be one of {MODEL_KINDS} or an nn.Module, got {model!r}")
        if model == "superpoint":
            module: nn.Module = SuperPoint(config if isinstance(config, SuperPointConfig) else None)
        elif model == "segnext":
            module = SegNext(config if isinstance(config, SegNextConfig) else None)
        else:
            state = matcher_state(state)
            cfg = config if isinstance(config, SemaGlueConfig) else SemaGlueConfig()
            module = SemaGlue(replace(cfg, n_layers=_num_layers(state)) if infer_layers else cfg)
    else:
        module = model
    if isinstance(module, SemaGlue):
        state = matcher_state(state)
    elif isinstance(module, SegNext):
        state = segnext_state(state)
    elif isinstance(module, Matching):
        raise ValueError("load weights into a Matching pipeline with load_matching(superpoint, segnext, matcher)")
    load_state_dict_into(module, state, strict=strict, source=str(path))
    return module.eval()


def load_matching(
    superpoint: str | Path,
    segnext: str | Path,
    matcher: str | Path,
    config: MatchingConfig | None = None,
    map_location: str | torch.device = "cpu",
) -> Matching:
    """The full pipeline with the three released files (``superpoint_v1.pth``, the SegNeXt ADE20K checkpoint,
    ``checkpoint_best.tar``), in eval mode. The matcher's layer count is read from its checkpoint."""
    config = config or MatchingConfig()
    matcher_model = load_pretrained(matcher, "matcher", config=config.matcher, map_location=map_location)
    if not isinstance(matcher_model, SemaGlue):  # pragma: no cover - load_pretrained("matcher") builds SemaGlue
        raise CheckpointError(f"{matcher}: did not load a SemaGlue matcher")
    pipeline = Matching(replace(config, matcher=matcher_model.config))
    pipeline.matcher = matcher_model
    load_pretrained(superpoint, pipeline.superpoint, map_location=map_location)
    load_pretrained(segnext, pipeline.segment, map_location=map_location)
    return pipeline.eval()
