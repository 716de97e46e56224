"""Back-end choice for the cost-volume kernels: Triton on CUDA tensors, the PyTorch reference otherwise.

The environment variable ``SEMVISION_KERNELS`` (``auto`` | ``torch`` | ``triton``, default ``auto``) is read at every
call. ``triton`` on CPU tensors runs only when the Triton kernels were built by the interpreter (``TRITON_INTERPRET=1``
set before :mod:`semcommon.kernels.triton_ops` is first imported); otherwise it raises a one-line error.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import torch

ENV_VAR = "SEMVISION_KERNELS"
MODES = ("auto", "torch", "triton")


def triton_available() -> bool:
    """Whether the ``triton`` package is importable."""
    return importlib.util.find_spec("triton") is not None


def triton_ops() -> ModuleType:
    """The Triton kernel module (imported on first use; looked up in ``sys.modules`` on every call)."""
    return importlib.import_module("semcommon.kernels.triton_ops")


def select_backend(*tensors: torch.Tensor) -> str:
    """``"triton"`` or ``"torch"`` for an operation on ``tensors``, following ``SEMVISION_KERNELS``."""
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={mode!r} is not one of {', '.join(MODES)}")
    if mode == "torch":
        return "torch"
    on_cuda = all(t.is_cuda for t in tensors)
    if mode == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError(f"{ENV_VAR}=triton but triton is not installed (pip install triton)")
    if not on_cuda and not triton_ops().interpreted():
        raise RuntimeError(
            f"{ENV_VAR}=triton on CPU tensors needs TRITON_INTERPRET=1 set before the kernels are first imported"
        )
    return "triton"
