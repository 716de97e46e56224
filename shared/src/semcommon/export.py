"""ONNX export with dynamic image sizes, and a check of the exported graph against PyTorch with onnxruntime.

Needs the optional dependencies of ``semvision-common[export]`` (onnx, onnxscript; onnxruntime for the check).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["check_onnx", "export_onnx"]

_HINT = "install the export extra: pip install 'semvision-common[export]'"


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the package {module!r}; {_HINT}") from exc


def export_onnx(
    module: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = 18,
) -> Path:
    """Export ``module`` (in eval mode, on its current device) to ``path`` atomically.

    ``dynamic_axes`` maps an input/output name to ``{axis: symbolic name}`` (e.g. ``{"left": {2: "H", 3: "W"}}``);
    the TorchScript-based exporter is used so the same call works on every torch>=2.1.
    """
    _require("onnx")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of torch.export, which cannot trace the data-dependent
            # control flow of several of these models; the legacy exporter is what works for all of them.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*feature will be removed.*")
            torch.onnx.export(
                module,
                example_inputs,
                str(tmp),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
                opset_version=opset,
                dynamo=False,
            )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(
    path: str | Path, module: nn.Module, inputs: tuple[torch.Tensor, ...], *, atol: float, rtol: float = 0.0
) -> float:
    """Run the exported graph with onnxruntime (CPU) and PyTorch on ``inputs``; return the largest abs difference.

    Raises ``AssertionError`` naming the worst output when any element is off by more than ``atol + rtol·|ref|``.
    """
    _require("onnxruntime")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {meta.name: x.detach().cpu().numpy() for meta, x in zip(session.get_inputs(), inputs, strict=True)}
    got = session.run(None, feeds)
    module.eval()
    with torch.no_grad():
        expected = module(*inputs)
    if isinstance(expected, torch.Tensor):
        expected = (expected,)
    elif isinstance(expected, Mapping):
        expected = tuple(expected.values())
    names = [meta.name for meta in session.get_outputs()]
    worst = 0.0
    for name, ref, out in zip(names, expected, got, strict=True):
        ref_np = ref.detach().cpu().numpy()
        if ref_np.shape != out.shape:
            raise AssertionError(f"ONNX output {name}: shape {out.shape} vs PyTorch {ref_np.shape}")
        diff = np.abs(ref_np.astype(np.float64) - out.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        excess = diff - (atol + rtol * np.abs(ref_np))
        if (excess > 0).any():
            raise AssertionError(
                f"ONNX output {name}: max abs diff {diff.max():.3g} exceeds atol {atol:g} + rtol {rtol:g}·|ref|"
            )
    return worst
