"""Benchmark helpers shared by every package's ``bench/bench_speed.py``.

A benchmark times several implementations of one model on the same inputs in one process (the reference path, the
exact fast path, approximate modes), so ratios do not depend on the machine's mood between processes. Each row
records the median latency, peak memory above the pre-call level and the largest output difference from the
reference; :func:`run_bench` prints the rows and appends them to ``bench/results/<machine>.json``, which
``bench/render.py`` turns into the README table and plot.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import platform
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semcommon.runtime import resolve_device

__all__ = [
    "TABLE_HEADER",
    "BenchRow",
    "Measurement",
    "Variant",
    "add_bench_arguments",
    "bench_device",
    "format_row",
    "machine_info",
    "machine_slug",
    "max_abs_diff",
    "measure",
    "run_bench",
    "save_rows",
    "time_variants",
]


@dataclass(frozen=True)
class Measurement:
    """Latency over ``repeats`` timed calls (after warm-up) and peak memory above the level before the calls."""

    median_ms: float
    min_ms: float
    max_ms: float
    peak_mib: float
    repeats: int


@dataclass
class BenchRow:
    """One implementation of one case on one device; ``speedup`` = reference median / this median."""

    package: str
    case: str
    size: str
    pixels: int
    impl: str
    exact: bool
    device: str
    median_ms: float
    min_ms: float
    max_ms: float
    peak_mib: float
    throughput: float
    speedup: float | None
    max_abs_diff: float | None
    parity_ok: bool | None
    accuracy: dict[str, float] | None = None
    note: str = ""


@dataclass
class Variant:
    """One implementation to time: ``fn()`` returns the outputs compared with the reference variant's.

    ``exact`` variants must stay within ``atol`` of the reference (their row's ``parity_ok``); approximate ones
    report the difference and, where measured, an ``accuracy`` dict (e.g. the change of EPE on demo data).
    """

    impl: str
    fn: Callable[[], Any]
    exact: bool = True
    atol: float = 1e-4
    accuracy: dict[str, float] | None = None
    note: str = ""


class _RssSampler:
    """Samples this process's resident set size from ``/proc/self/statm`` on a thread (Linux; 0 elsewhere)."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * self.page
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> _RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so the next RSS baseline is not inflated by
    what earlier variants freed but the allocator kept; a no-op where glibc is absent."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure(fn: Callable[[], Any], *, device: torch.device | str, warmup: int = 1, repeats: int = 5) -> Measurement:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones (CUDA synchronised around each).

    Peak memory covers the warm-up and timed calls: ``torch.cuda.max_memory_allocated`` above the allocation level
    before them on CUDA, and on the CPU the peak resident set size (sampled every 2 ms) above the level before them,
    after freed heap memory was returned to the OS.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def timed() -> list[float]:
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        return times

    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        times = timed()
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        _release_free_memory()
        sampler = _RssSampler()
        base = sampler.rss()
        with sampler:
            times = timed()
        peak = sampler.peak - base
    return Measurement(
        median_ms=float(np.median(times)),
        min_ms=float(min(times)),
        max_ms=float(max(times)),
        peak_mib=max(peak, 0) / 2**20,
        repeats=repeats,
    )


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [leaf for key in value for leaf in _leaves(value[key], f"{prefix}{key}.")]
    if isinstance(value, (list, tuple)):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, f"{prefix}{index}.")]
    return [(prefix.rstrip("."), value)]


def max_abs_diff(reference: Any, output: Any) -> float:
    """Largest absolute difference over every tensor/array leaf of two nested outputs (dicts, lists, tuples).

    Leaves are paired by position/key; a missing key or a shape mismatch raises ``ValueError`` naming the leaf.
    Non-numeric leaves (strings, ``None``) must be equal.
    """
    ref_leaves, out_leaves = dict(_leaves(reference)), dict(_leaves(output))
    if ref_leaves.keys() != out_leaves.keys():
        raise ValueError(f"outputs differ in structure: {sorted(ref_leaves)} vs {sorted(out_leaves)}")
    worst = 0.0
    for name, ref in ref_leaves.items():
        out = out_leaves[name]
        if isinstance(ref, (torch.Tensor, np.ndarray, int, float)) and not isinstance(ref, bool):
            a = torch.as_tensor(ref).detach().cpu().double()
            b = torch.as_tensor(out).detach().cpu().double()
            if a.shape != b.shape:
                raise ValueError(f"output {name or '<root>'}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
            if a.numel():
                both_nan = torch.isnan(a) & torch.isnan(b)
                diff = (a - b).abs().masked_fill(both_nan, 0.0)
                worst = max(worst, float(diff.nan_to_num(nan=float("inf")).max()))
        elif ref != out:
            raise ValueError(f"output {name or '<root>'}: {ref!r} vs {out!r}")
    return worst


def time_variants(
    package: str,
    case: str,
    size: str,
    pixels: int,
    variants: Sequence[Variant],
    *,
    device: torch.device | str,
    warmup: int = 1,
    repeats: int = 5,
    items_per_call: int = 1,
) -> list[BenchRow]:
    """Time every variant on the same inputs, in this process; the first variant is the reference.

    Each variant's outputs (one extra call, untimed) are compared with the reference's; ``speedup`` is the
    reference median over the variant's median and ``throughput`` is ``items_per_call`` per second.
    """
    if not variants:
        raise ValueError("time_variants: no variants given")
    reference_out = variants[0].fn()
    rows: list[BenchRow] = []
    reference_ms: float | None = None
    for variant in variants:
        with torch.inference_mode():
            timing = measure(variant.fn, device=device, warmup=warmup, repeats=repeats)
            diff = max_abs_diff(reference_out, variant.fn()) if rows else 0.0
        reference_ms = reference_ms or timing.median_ms
        rows.append(
            BenchRow(
                package=package,
                case=case,
                size=size,
                pixels=pixels,
                impl=variant.impl,
                exact=variant.exact,
                device=str(torch.device(device)),
                median_ms=timing.median_ms,
                min_ms=timing.min_ms,
                max_ms=timing.max_ms,
                peak_mib=timing.peak_mib,
                throughput=items_per_call * 1e3 / timing.median_ms,
                speedup=reference_ms / timing.median_ms,
                max_abs_diff=diff,
                parity_ok=diff <= variant.atol if variant.exact else None,
                accuracy=variant.accuracy,
                note=variant.note,
            )
        )
    return rows


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """CPU model, vector capability, cores, threads, GPU name (CUDA devices), torch and Python versions."""
    device = torch.device(device)
    return {
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def machine_slug(info: Mapping[str, Any]) -> str:
    """A file-name-safe machine name: the GPU name when one was used, else CPU model + capability + cores."""
    name = info["gpu"] or f"{info['cpu']} {info['cpu_capability']} {info['cores']}c"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every ``bench_speed.py``."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")
    parser.add_argument("--sizes", choices=("small", "paper", "all"), default="all", help="which input sizes to time")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (median reported; default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("bench") / "results",
        help="folder of <machine>.json results (default bench/results)",
    )
    parser.add_argument("--no-save", action="store_true", help="print the table only")


def bench_device(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and resolve ``--device``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def format_row(row: BenchRow) -> str:
    speedup = f"{row.speedup:.2f}x" if row.speedup is not None else "-"
    diff = f"{row.max_abs_diff:.1e}" if row.max_abs_diff is not None else "-"
    parity = {True: "ok", False: "OVER TOL", None: "-"}[row.parity_ok]
    accuracy = ", ".join(f"{k} {v:.4g}" for k, v in (row.accuracy or {}).items())
    return (
        f"| {row.package} | {row.case} | {row.size} | {row.impl}{'' if row.exact else ' (approx.)'} | {row.device} | "
        f"{row.median_ms:.1f} | {row.peak_mib:.0f} | {speedup} | {diff} {parity} | {accuracy} | {row.note} |"
    )


TABLE_HEADER = (
    "| package | case | size | impl | device | median ms | peak MiB | speed-up | max abs diff vs reference "
    "| accuracy | note |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def save_rows(rows: Sequence[BenchRow], info: Mapping[str, Any], results_dir: Path) -> Path:
    """Append one run (timestamp, machine info, rows) to ``results_dir/<machine>.json`` (atomic replace)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{machine_slug(info)}.json"
    data = json.loads(path.read_text()) if path.exists() else {"machine": dict(info), "runs": []}
    data["machine"] = dict(info)
    data["runs"].append(
        {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": [dataclasses.asdict(r) for r in rows]}
    )
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path


def run_bench(package: str, rows: Sequence[BenchRow], args: argparse.Namespace) -> Path | None:
    """Print ``rows`` as a table and (unless ``--no-save``) append them to the machine's results file."""
    device = torch.device(rows[0].device) if rows else torch.device("cpu")
    info = machine_info(device)
    print(
        f"{package}: {info['gpu'] or info['cpu']} ({info['cpu_capability']}), torch {info['torch']}, "
        f"{info['threads']} threads"
    )
    print(TABLE_HEADER)
    for row in rows:
        print(format_row(row))
    if args.no_save or not rows:
        return None
    path = save_rows(rows, info, args.results)
    print(f"results appended to {path}")
    return path
