"""Runtime helpers: seeding, device choice, parameter counts, latency, progress bars, logging."""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

__all__ = [
    "PRECISIONS",
    "add_inference_arguments",
    "autocast",
    "count_parameters",
    "get_logger",
    "measure_latency",
    "package_version",
    "progress",
    "resolve_device",
    "seed_everything",
]

T = TypeVar("T")

PRECISIONS = ("fp32", "bf16", "fp16")
"""Inference precisions: ``fp32`` is exact (parity); ``bf16``/``fp16`` run under autocast and are approximate."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given.

    Asking for CUDA on a machine without it raises a one-line error instead of failing later.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"--device: unknown device {device!r} (use auto, cpu or cuda)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    return resolved


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def measure_latency(fn: Callable[[], Any], warmup: int = 1, repeats: int = 3) -> float:
    """Median wall-clock time of ``fn()`` in milliseconds after ``warmup`` calls (CUDA is synchronised)."""

    def sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, enabled: bool = True) -> Iterable[T]:
    """A tqdm progress bar on stderr (plain iteration when disabled or stderr is not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def get_logger(name: str, level: int = logging.INFO) -> logging.Logger:
    """A logger writing ``time level name: message`` lines to stderr, configured once per name."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return logger


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (its ``pyproject.toml`` is the one place it is set); ``0+unknown``
    when the code runs from a source tree that was never installed."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "0+unknown"


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """The inference flags every package's ``predict``/``evaluate`` share: ``--impl``, ``--precision``, ``--compile``."""
    group = parser.add_argument_group("speed")
    group.add_argument(
        "--impl",
        choices=("fast", "reference"),
        default="fast",
        help="fast: the exact fast path (outputs equal the reference within the parity tolerances); "
        "reference: the eager operations of the authors' code, in their order (default: fast)",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (exact, default); bf16/fp16 autocast: APPROXIMATE, faster on GPUs (see the package README)",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (opt-in; the first call compiles, results may differ in the last bits)",
    )


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """A context running the enclosed ops in ``precision``: nothing for ``fp32``, ``torch.autocast`` otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision: unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)
