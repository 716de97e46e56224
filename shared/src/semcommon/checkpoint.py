"""Checkpoints: safe loading, atomic saving, key remapping and load reports.

Every loader uses ``torch.load(..., weights_only=True)`` (or safetensors), so a checkpoint can never run code.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "LoadReport",
    "extract_state_dict",
    "load_checkpoint",
    "load_state_dict_into",
    "remap_keys",
    "save_checkpoint",
    "strip_prefix",
]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Read a checkpoint safely: ``.safetensors`` via safetensors, anything else via ``torch.load(weights_only=True)``.

    Raises :class:`CheckpointError` naming the file when it is missing, truncated or not a weights-only checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CheckpointError(f"{path}: reading .safetensors needs the 'safetensors' package") from exc
        try:
            return load_file(str(path), device=str(map_location))
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot be read as a weights-only torch checkpoint ({first_line})") from exc


def extract_state_dict(obj: Any, keys: Iterable[str] = ("state_dict", "model", "model_state_dict", "net")) -> dict:
    """The tensor dictionary inside a checkpoint: the first of ``keys`` that holds a dict, else ``obj`` itself."""
    if isinstance(obj, Mapping):
        for key in keys:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise CheckpointError(f"no state dict found in checkpoint (looked for a tensor dict or one of {list(keys)})")


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that starts with it (e.g. ``module.`` from ``nn.DataParallel``)."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def remap_keys(
    state: Mapping[str, torch.Tensor], rules: Iterable[tuple[str, str]] | Callable[[str], str | None]
) -> dict[str, torch.Tensor]:
    """Rename keys, either with ``(old_prefix, new_prefix)`` rules (first match wins) or a function.

    A function returning ``None`` drops the key.
    """
    if callable(rules):
        renamed = {}
        for key, value in state.items():
            new = rules(key)
            if new is not None:
                renamed[new] = value
        return renamed
    rule_list = list(rules)
    out = {}
    for key, value in state.items():
        for old, new in rule_list:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a model."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        """One line naming the problem keys (at most ``limit`` of each kind)."""

        def names(items: list[str]) -> str:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {names(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {names(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} {list(c)} vs model {list(m)}" for k, c, m in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape-mismatched: {names(shown)}")
        return "; ".join(parts) if parts else "all keys matched"


def load_state_dict_into(
    model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True, source: str = "checkpoint"
) -> LoadReport:
    """Load ``state`` into ``model``, reporting missing / unexpected / shape-mismatched keys by name.

    Shape-mismatched entries are never loaded. With ``strict`` any problem raises :class:`CheckpointError`
    (one line, naming ``source`` and the keys); otherwise the matching entries are loaded and the report returned.
    """
    own = model.state_dict()
    report = LoadReport(
        missing=[k for k in own if k not in state],
        unexpected=[k for k in state if k not in own],
        mismatched=[
            (k, tuple(state[k].shape), tuple(own[k].shape))
            for k in own
            if k in state and state[k].shape != own[k].shape
        ],
    )
    if strict and not report.ok:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {report.summary()}")
    bad = {k for k, _, _ in report.mismatched}
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in bad}, strict=False)
    return report


def save_checkpoint(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` with ``torch.save`` atomically: a temporary file in the same folder, then a rename.

    An interrupted save never leaves a truncated file at ``path``; an existing file is replaced only once the new one
    is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
