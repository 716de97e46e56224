"""The training frame the five packages share: ``fit(task, TrainerConfig)``.

The package owns the model, losses, schedule and data (a :class:`TrainTask`); the frame owns the mechanics: DDP under
``torchrun``, exact resume, atomic checkpoints, JSONL / TensorBoard logs, progress, AMP and the failure modes.
Plain PyTorch and one loop, in the spirit of glue-factory's trainer, not a framework.

Data order: each epoch's order is the ``DistributedSampler`` permutation of ``(seed, epoch)`` (one process is a
world of size 1); a resumed run skips the batches the checkpoint already consumed in its epoch, and every RNG
(Python, NumPy, torch CPU and CUDA, per rank) is restored, so a resumed run repeats the uninterrupted one exactly
when randomness lives in the main process (``num_workers=0``) or is derived from the sample index.
"""

from __future__ import annotations

import abc
import argparse
import ast
import atexit
import contextlib
import enum
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass, replace
from pathlib import Path, PurePath
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .checkpoint import (
    CheckpointError,
    LoadReport,
    extract_state_dict,
    load_checkpoint,
    load_state_dict_into,
    save_checkpoint,
)
from .runtime import resolve_device, seed_everything

__all__ = [
    "AMP_MODES",
    "FitResult",
    "NonFiniteLossError",
    "TrainTask",
    "TrainerConfig",
    "TrainingError",
    "add_train_arguments",
    "apply_override",
    "fit",
    "load_config",
    "parse_value",
    "to_plain",
    "trainer_config_from_args",
    "unwrap_model",
]

AMP_MODES = ("off", "fp16", "bf16")
C = TypeVar("C")


class TrainingError(ValueError):
    """A run cannot start or continue (bad run folder, unreadable checkpoint, bad option): one line for the user."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN/Inf; the message names the step and the last good checkpoint."""


@dataclass
class TrainerConfig:
    """The frame's mechanics. ``batch_size`` is per process; a step is one optimizer step (``grad_accum`` batches).

    Training stops at ``max_steps`` or after ``epochs`` epochs, whichever comes first (``None`` = no bound).
    """

    run_dir: str = "runs/train"
    max_steps: int | None = 1000
    epochs: int | None = None
    batch_size: int = 8
    num_workers: int = 0
    save_every: int = 500
    log_every: int = 50
    eval_every: int | None = None
    keep_last: int = 3
    best_metric: str | None = None
    best_higher_is_better: bool = True
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    grad_accum: int = 1
    clip_grad: float | None = None
    channels_last: bool = False
    compile: bool = False
    skip_nonfinite: bool = False
    quiet: bool = False
    resume: bool = False
    init: str | None = None
    deterministic: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp: {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.max_steps is None and self.epochs is None:
            raise ValueError("max_steps and epochs are both None: the run would never stop")
        for name in ("max_steps", "epochs", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        for name in ("batch_size", "save_every", "log_every", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.keep_last < 0 or self.num_workers < 0:
            raise ValueError("keep_last and num_workers must be >= 0")


class TrainTask(abc.ABC):
    """What a package provides. ``training_step`` gets the batch on the device and the 0-based step index.

    ``model`` in ``training_step`` may be wrapped (DDP, compile): call ``model(...)`` so gradients are synchronised,
    and reach attributes through :func:`unwrap_model`. ``evaluate`` gets the plain model in eval mode under
    ``torch.no_grad()`` and a loader whose batches are already on the device.
    """

    config: Any = None
    collate_fn: Any = None
    find_unused_parameters: bool = False

    @abc.abstractmethod
    def build_model(self) -> nn.Module: ...

    @abc.abstractmethod
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer: ...

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """An LR scheduler stepped once per optimizer step, or ``None``."""
        return None

    @abc.abstractmethod
    def train_dataset(self) -> Dataset: ...

    def val_dataset(self) -> Dataset | None:
        return None

    @abc.abstractmethod
    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, Mapping[str, Any]]: ...

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        return {}

    def on_init_checkpoint(self, model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport | None:
        """How ``--init`` loads weights: by default every matching key, reporting the others."""
        return load_state_dict_into(model, state_dict, strict=False, source="--init checkpoint")


@dataclass
class FitResult:
    model: nn.Module
    run_dir: Path
    step: int
    metrics: dict[str, float]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` and DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model


# ----------------------------------------------------------------------------------------------------------- config


def to_plain(obj: Any) -> Any:
    """Dataclasses / mappings / sequences as JSON-able plain data (tuples become lists, paths strings)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def parse_value(text: str) -> Any:
    """``--set`` values: JSON (``1e-4``, ``true``, ``null``, ``[1, 2]``), else a Python literal, else the string."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError):
        return text


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """A dataclass ``cls`` from a JSON/YAML file (missing keys keep their defaults) plus ``a.b=value`` overrides.

    Nested dataclasses are built from nested mappings; an unknown key or a value of the wrong type raises
    ``ValueError`` naming the dotted key.
    """
    data: dict[str, Any] = _read_config_file(Path(path)) if path else {}
    for item in overrides or ():
        apply_override(data, item)
    return _build(cls, data, "", None)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``--set a.b=value`` override (value parsed by :func:`parse_value`) to nested plain data."""
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = parse_value(text)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ValueError(f"{path}: reading YAML needs PyYAML (pip install 'semvision-common[yaml]')") from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    else:
        raise ValueError(f"{path}: config files are .json, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    return data


def _field_default(f: Any) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


def _build(cls: type[C], data: Any, prefix: str, base: C | None) -> C:
    if not isinstance(data, Mapping):
        raise ValueError(f"config key {prefix.rstrip('.') or '<root>'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"unknown config key {prefix}{key!s} (known in {cls.__name__}: {', '.join(known)})")
        inner = getattr(base, key) if base is not None else _field_default(known[key])
        values[key] = _coerce(value, hints[key], f"{prefix}{key}", inner)
    try:
        return replace(base, **values) if base is not None else cls(**values)
    except TypeError as exc:
        raise ValueError(f"config {prefix.rstrip('.') or cls.__name__}: {exc}") from exc


def _coerce(value: Any, tp: Any, key: str, base: Any = None) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    wrong = ValueError(f"config key {key}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
    if tp is Any or tp is object:
        return value
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            with contextlib.suppress(ValueError):
                return _coerce(value, arg, key, base)
        raise wrong
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"config key {key}: {value!r} is not one of {', '.join(map(repr, args))}")
    if is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return _build(tp, value, f"{key}.", base if isinstance(base, tp) else None)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp in (int, float):
        if isinstance(value, str):  # PyYAML reads 1e-4 as a string
            with contextlib.suppress(ValueError):
                value = tp(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (tp is float or value == int(value)):
            return tp(value)
        raise wrong
    if tp is str:
        if isinstance(value, str):
            return value
        raise wrong
    if isinstance(tp, type) and issubclass(tp, PurePath) and isinstance(value, str):
        return tp(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise wrong from None
    container = origin or tp
    if container in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise wrong
        if container is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ValueError(f"config key {key}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        items = [_coerce(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if container is tuple else items
    if container in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise wrong
        return {k: _coerce(v, args[1], f"{key}.{k}") if args else v for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------------- command line


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_train_arguments(parser: argparse.ArgumentParser, run_dir: str | None = None) -> None:
    """The flags every package's ``train`` shares; see :func:`trainer_config_from_args`.

    ``run_dir`` is the default of ``--run-dir``; without it the trainer defaults (or ``runs/train``) decide.
    """
    add = parser.add_argument
    add("--data", default="synthetic", help="'synthetic' or a dataset folder (default: synthetic)")
    add("--config", metavar="FILE", help="a JSON/YAML config of the package (e.g. the authors' file)")
    add("--set", metavar="KEY=VALUE", action="append", default=[], help="override a config key (repeatable)")
    shown = run_dir or "runs/train"
    add("--run-dir", default=run_dir, help=f"run folder: config.json, log.jsonl, checkpoints/ (default: {shown})")
    add("--resume", action="store_true", help="continue the run in --run-dir from checkpoints/last.pt")
    add("--overwrite", action="store_true", help="start over in a --run-dir that holds a run (deletes its checkpoints)")
    add("--init", metavar="CKPT", help="initialise the weights from a checkpoint (weights only)")
    add("--max-steps", type=_count, help="stop after N optimizer steps")
    add("--epochs", type=_count, help="stop after N epochs")
    add("--save-every", type=_positive, help="write checkpoints/last.pt every N steps")
    add("--log-every", type=_positive, help="log every N steps")
    add("--eval-every", type=_positive, help="evaluate every N steps (default: at the end)")
    add("--keep-last", type=_count, help="step checkpoints kept next to last.pt")
    add("--seed", type=int)
    add("--device", help="auto | cpu | cuda (default: auto)")
    add("--amp", choices=AMP_MODES, help="mixed precision (default: off)")
    add("--batch-size", type=_positive, help="batch size per process")
    add("--num-workers", type=_count, help="data-loading worker processes")
    add("--grad-accum", type=_positive, help="batches per optimizer step")
    add("--clip-grad", type=float, metavar="NORM", help="clip the gradient norm")
    add("--skip-nonfinite", action="store_true", help="skip steps whose loss is NaN/Inf instead of stopping")
    add("--channels-last", action="store_true", help="channels-last memory format")
    add("--compile", action="store_true", help="torch.compile the model")
    add("--quiet", action="store_true", help="no progress bar or console log lines")


def trainer_config_from_args(args: argparse.Namespace, **defaults: Any) -> TrainerConfig:
    """A :class:`TrainerConfig`: flags given on the command line, else the package's ``defaults``, else the fields'."""
    values = dict(defaults)
    for f in fields(TrainerConfig):
        given = getattr(args, f.name, None)
        if given is not None and given is not False:
            values[f.name] = given
    if getattr(args, "epochs", None) is not None and getattr(args, "max_steps", None) is None:
        values["max_steps"] = None  # --epochs alone: the epochs decide
    return TrainerConfig(**values)


# ------------------------------------------------------------------------------------------------------ the loop


@dataclass
class _World:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_world(device_name: str) -> _World:
    """One process, or this rank of a ``torchrun`` launch (the process group is made once and kept until exit, so
    that a second ``fit`` in the same process, e.g. a stage 2, reuses it)."""
    device = resolve_device(device_name)
    if not (dist.is_available() and (dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) > 1)):
        return _World(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy_group)
    return _World(dist.get_rank(), dist.get_world_size(), device)


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def _determinism(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    benchmark = torch.backends.cudnn.benchmark
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = benchmark


@contextlib.contextmanager
def _stop_request() -> Iterator[types.SimpleNamespace]:
    """Ctrl-C / SIGTERM set a flag the loop reads at the end of a step; a second Ctrl-C stops at once."""
    flag = types.SimpleNamespace(requested=False)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handle(signum: int, frame: Any) -> None:
        if flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.requested = True

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers outlive a terminal's Ctrl-C, so the main process can finish its step and save.

    Forked workers inherit the frame's handler anyway; spawned / forkserver ones would otherwise die.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _rng_state() -> dict[str, Any]:
    """Every RNG as tensors and plain data (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _publish(src: Path, dst: Path) -> None:
    """Make ``dst`` a complete copy of ``src`` atomically (a hard link when the file system allows)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _logged_step(line: str) -> float:
    """The step of a log line; a line cut short by a kill counts as after any checkpoint."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


class _DeviceLoader:
    """A DataLoader whose batches arrive on the device (``len``, ``dataset`` etc. pass through)."""

    def __init__(self, loader: DataLoader, move: Any) -> None:
        self.loader, self.move = loader, move

    def __iter__(self) -> Iterator[Any]:
        return (self.move(batch) for batch in self.loader)

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class _Run:
    """One call of :func:`fit`: its state and the pieces of the loop."""

    def __init__(self, task: TrainTask, cfg: TrainerConfig, world: _World, stop: types.SimpleNamespace) -> None:
        self.task, self.cfg, self.w, self.stop = task, cfg, world, stop
        self.run_dir = Path(cfg.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.step = self.epoch = self.step_in_epoch = self.skipped = 0
        self.best: float | None = None
        self.metrics: dict[str, float] = {}
        self.eval_step = -1
        self.saved_step = -1
        self.last_good = "none written yet"
        self.rng: Any = None
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.window_steps = 0
        self.t0 = time.perf_counter()
        self.log_file: Any = None
        self.tb: Any = None
        self.bar: Any = None

    # ---------------------------------------------------------------------------------------------- helpers

    def on_main(self, fn: Any) -> Any:
        """Run ``fn`` on rank 0 and share its result (or its failure) with every rank."""
        result, error = None, None
        if self.w.main:
            try:
                result = fn()
            except Exception as exc:
                if self.w.world == 1:
                    raise
                error = exc
        if self.w.world > 1:
            box = [result, None if error is None else str(error)]
            dist.broadcast_object_list(box, src=0)
            if error is not None:
                raise error
            if box[1] is not None:
                raise TrainingError(box[1])
            result = box[0]
        return result

    def move(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            if self.cfg.channels_last and obj.dim() == 4 and obj.is_floating_point():
                return obj.to(self.w.device, non_blocking=True, memory_format=torch.channels_last)
            return obj.to(self.w.device, non_blocking=True)
        if isinstance(obj, Mapping):
            return {k: self.move(v) for k, v in obj.items()}
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(self.move(v) for v in obj))
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.move(v) for v in obj)
        return obj

    def autocast(self) -> Any:
        if self.cfg.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.cfg.amp == "fp16" else torch.bfloat16
        return torch.autocast(self.w.device.type, dtype=dtype)

    def loader(self, dataset: Dataset, sampler: Any, generator: torch.Generator | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            drop_last=generator is not None,
            num_workers=self.cfg.num_workers,
            collate_fn=self.task.collate_fn,
            pin_memory=self.w.device.type == "cuda",
            generator=generator,
            worker_init_fn=_ignore_sigint,
        )

    def any_rank(self, flag: bool) -> bool:
        if self.w.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.w.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def emit(self, record: dict[str, Any]) -> None:
        """One JSONL line (+ TensorBoard scalars, + a console line unless quiet); rank 0 only."""
        if not self.w.main:
            return
        self.log_file.write(json.dumps(record) + "\n")
        self.log_file.flush()
        kind = record["kind"]
        for key, value in record.items():
            if self.tb is not None and isinstance(value, (int, float)) and key not in ("kind", "step"):
                self.tb.add_scalar(f"{kind}/{key}", value, record["step"])
        if not self.cfg.quiet:
            shown = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
            (self.bar.write if self.bar is not None else print)(shown)

    # ---------------------------------------------------------------------------------------------- run folder

    def prepare_run_dir(self, model: nn.Module) -> None:
        cfg, run, ckpt = self.cfg, self.run_dir, self.ckpt_dir
        try:
            ckpt.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=ckpt)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise TrainingError(f"run folder {run} is not writable ({exc.strerror or exc})") from exc
        for stale in ckpt.glob(".*.tmp"):
            stale.unlink()
        log = run / "log.jsonl"
        ours = [*ckpt.glob("*.pt"), *([log] if log.exists() else []), *(run / "tb").glob("events.out.tfevents.*")]
        if cfg.resume:
            if not (ckpt / "last.pt").is_file():
                raise TrainingError(f"--resume: no checkpoint at {ckpt / 'last.pt'}")
        elif ours and not cfg.overwrite:
            names = ", ".join(sorted(p.name for p in ours)[:3])
            raise TrainingError(f"run folder {run} already holds a run ({names}); use --resume or --overwrite")
        elif ours:
            for path in ours:
                path.unlink()
        tensors = [*model.parameters(), *model.buffers()]
        need = 3 * sum(t.numel() * t.element_size() for t in tensors)
        free = shutil.disk_usage(ckpt).free
        if free < need:
            raise TrainingError(
                f"run folder {run}: {free / 2**20:.1f} MiB free, a checkpoint needs ~{need / 2**20:.1f}"
            )
        info = {"task": f"{type(self.task).__module__}.{type(self.task).__qualname__}", "world_size": self.w.world}
        payload = {**info, "config": to_plain(self.task.config), "trainer": to_plain(cfg)}
        _write_text(run / "config.json", json.dumps(payload, indent=2) + "\n")

    def open_logs(self, total: int) -> None:
        log = self.run_dir / "log.jsonl"
        if self.cfg.resume and log.exists():  # drop the lines a killed run wrote after its checkpoint
            kept = [line for line in log.read_text().splitlines(True) if _logged_step(line) <= self.step]
            _write_text(log, "".join(kept))
        self.log_file = open(log, "a")  # noqa: SIM115 - closed in fit's finally
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None)
        if not self.cfg.quiet and sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=self.step, desc="train", dynamic_ncols=True)

    def close(self) -> None:
        for handle in (self.bar, self.tb, self.log_file):
            if handle is not None:
                handle.close()

    # --------------------------------------------------------------------------------------------- checkpoints

    def load_init(self, model: nn.Module) -> None:
        path = self.cfg.init
        try:
            state = extract_state_dict(load_checkpoint(path))
        except CheckpointError as exc:
            raise TrainingError(f"--init {path}: {exc}") from exc
        report = self.task.on_init_checkpoint(model, state)
        if isinstance(report, LoadReport) and not report.ok:
            if len(report.missing) + len(report.mismatched) >= len(model.state_dict()):
                raise TrainingError(f"--init {path}: no weight fits the model ({report.summary()})")
            if self.w.main:
                print(f"--init {path}: {report.summary()}", file=sys.stderr)

    def load_resume(self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any) -> None:
        path = self.ckpt_dir / "last.pt"
        try:
            state = load_checkpoint(path)
            load_state_dict_into(model, state["model"], strict=True, source=str(path))
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state["scheduler"] is not None:
                scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:
                scaler.load_state_dict(state["scaler"])
        except (CheckpointError, KeyError, ValueError) as exc:
            raise TrainingError(f"--resume {path}: {exc}") from exc
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        self.best, self.skipped, self.saved_step = state["best"], state["skipped"], state["step"]
        self.last_good = f"{path} (step {self.step})"
        rngs = state["rng"]
        self.rng = rngs[self.w.rank] if len(rngs) == self.w.world else None
        if self.w.main and self.rng is None:
            print(f"--resume: {len(rngs)} processes wrote {path}, now {self.w.world}: RNGs reseeded", file=sys.stderr)
        if self.w.main and state["config"] != to_plain(self.task.config):
            print(f"--resume: the config differs from the one stored in {path}", file=sys.stderr)

    def save(self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, last: bool, best: bool) -> None:
        rngs = [None] * self.w.world
        if self.w.world > 1:
            dist.all_gather_object(rngs, _rng_state())
        else:
            rngs[0] = _rng_state()

        def write() -> None:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "step": self.step,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "best": self.best,
                "skipped": self.skipped,
                "rng": rngs,
                "config": to_plain(self.task.config),
                "trainer": to_plain(self.cfg),
            }
            ckpt = self.ckpt_dir
            if last and self.cfg.keep_last:
                first = ckpt / f"step-{self.step:08d}.pt"
            else:
                first = ckpt / ("last.pt" if last else "best.pt")
            try:
                save_checkpoint(state, first)
                for name, wanted in (("last.pt", last), ("best.pt", best)):
                    if wanted and first.name != name:
                        _publish(first, ckpt / name)
            except OSError as exc:
                raise TrainingError(f"cannot write checkpoint {first}: {exc.strerror or exc}") from exc
            for old in sorted(ckpt.glob("step-*.pt"))[: -self.cfg.keep_last or None]:
                old.unlink()

        self.on_main(write)
        if last:
            self.saved_step = self.step
            self.last_good = f"{self.ckpt_dir / 'last.pt'} (step {self.step})"

    # ------------------------------------------------------------------------------------------------ pieces

    def evaluate(self, model: nn.Module, val_set: Dataset, epoch: int) -> bool:
        """Evaluate on rank 0 (RNGs untouched), log, and say whether ``best_metric`` improved."""

        def run() -> dict[str, float]:
            loader = _DeviceLoader(self.loader(val_set, None), self.move)
            rng = _rng_state()  # evaluating leaves the training's random streams as they were
            model.eval()
            try:
                with torch.no_grad(), self.autocast():
                    return {k: float(v) for k, v in self.task.evaluate(model, loader).items()}
            finally:
                model.train()
                _set_rng_state(rng)

        self.metrics = self.on_main(run)
        self.eval_step = self.step
        self.emit({"kind": "eval", "step": self.step, "epoch": epoch, **self.metrics})
        name = self.cfg.best_metric
        if name is None:
            return False
        if name not in self.metrics:
            raise TrainingError(f"best_metric {name!r} is not among the evaluation metrics {sorted(self.metrics)}")
        value = self.metrics[name]
        sign = 1 if self.cfg.best_higher_is_better else -1
        if self.best is None or sign * (value - self.best) > 0:
            self.best = value
            return True
        return False

    def log_train(self, epoch: int, optimizer: Any) -> None:
        keys = sorted(self.sums)
        values: dict[str, float] = {}
        if keys:  # sums and counts of every key, summed over the ranks
            table = torch.stack([torch.stack([self.sums[k], self.counts[k]]) for k in keys])
            if self.w.world > 1:
                dist.all_reduce(table)
            values = dict(zip(keys, (table[:, 0] / table[:, 1]).tolist(), strict=True))
        seconds = max(time.perf_counter() - self.t0, 1e-9)
        images = self.window_steps * self.cfg.batch_size * self.cfg.grad_accum * self.w.world
        lr = optimizer.param_groups[0]["lr"]
        record = {"kind": "train", "step": self.step, "epoch": epoch, "lr": lr, **values}
        self.emit({**record, "images_per_s": round(images / seconds, 2), "skipped": self.skipped})
        self.sums, self.counts, self.window_steps, self.t0 = {}, {}, 0, time.perf_counter()

    def train_step(self, model: nn.Module, batches: Iterator[Any], optimizer: Any, scheduler: Any, scaler: Any) -> None:
        """One optimizer step over ``grad_accum`` batches; a non-finite loss stops the run or skips the step."""
        cfg, accum = self.cfg, self.cfg.grad_accum
        optimizer.zero_grad(set_to_none=True)
        logged: list[tuple[torch.Tensor, Mapping[str, Any]]] = []
        for i in range(accum):
            batch = self.move(next(batches))
            last = i == accum - 1
            sync = (
                contextlib.nullcontext() if last or self.w.world == 1 else getattr(model, "_orig_mod", model).no_sync()
            )
            with sync:
                with self.autocast():
                    loss, logs = self.task.training_step(model, batch, self.step)
                if self.any_rank(not bool(torch.isfinite(loss.detach()).all())):
                    for _ in range(accum - i - 1):
                        next(batches)
                    optimizer.zero_grad(set_to_none=True)
                    if not cfg.skip_nonfinite:
                        raise NonFiniteLossError(
                            f"non-finite loss at step {self.step + 1}; last good checkpoint: {self.last_good}"
                        )
                    self.skipped += 1
                    return
                scaler.scale(loss / accum if accum > 1 else loss).backward()
            logged.append((loss, logs))
        if cfg.clip_grad is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scale = scaler.get_scale() if scaler.is_enabled() else 1.0
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None and (not scaler.is_enabled() or scaler.get_scale() >= scale):
            scheduler.step()  # not after an fp16 step the scaler skipped for inf/NaN gradients
        for loss, logs in logged:
            for key, value in {"loss": loss, **logs}.items():
                value = value.detach().float().mean() if torch.is_tensor(value) else torch.tensor(float(value))
                self.sums[key] = self.sums.get(key, 0) + value.to(self.w.device)
                self.counts[key] = self.counts.get(key, 0) + torch.ones((), device=self.w.device)

    # -------------------------------------------------------------------------------------------------- main

    def run(self) -> FitResult:
        cfg, task, w = self.cfg, self.task, self.w
        seed_everything(cfg.seed + w.rank)
        raw = task.build_model().to(w.device)
        if cfg.init and not cfg.resume:
            self.load_init(raw)
        if cfg.channels_last:
            raw = raw.to(memory_format=torch.channels_last)
        optimizer = task.build_optimizer(raw)
        scheduler = task.build_scheduler(optimizer)
        scaler = torch.amp.GradScaler(w.device.type, enabled=cfg.amp == "fp16")
        train_set, val_set = task.train_dataset(), task.val_dataset()
        if cfg.best_metric is not None and val_set is None:
            raise TrainingError(f"best_metric {cfg.best_metric!r} needs a validation set; the task has none")
        sampler = DistributedSampler(train_set, w.world, w.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        per_step = cfg.batch_size * cfg.grad_accum
        steps_per_epoch = len(sampler) // per_step
        if steps_per_epoch == 0:
            raise TrainingError(f"the training set has {len(train_set)} samples, one step needs {per_step * w.world}")
        self.on_main(lambda: self.prepare_run_dir(raw))
        if cfg.resume:
            self.load_resume(raw, optimizer, scheduler, scaler)
        bounds = [cfg.max_steps, None if cfg.epochs is None else cfg.epochs * steps_per_epoch]
        total = min(b for b in bounds if b is not None)
        model: nn.Module = raw
        if w.world > 1:
            ids = [w.device.index] if w.device.type == "cuda" else None
            model = DistributedDataParallel(raw, device_ids=ids, find_unused_parameters=task.find_unused_parameters)
        if cfg.compile:
            model = torch.compile(model)
        self.on_main(lambda: self.open_logs(total))
        if self.rng is not None:
            _set_rng_state(self.rng)
        model.train()
        while self.step < total:
            sampler.set_epoch(self.epoch)
            order = list(sampler)[self.step_in_epoch * per_step : steps_per_epoch * per_step]
            seed = int(np.random.SeedSequence([cfg.seed, self.epoch, w.rank]).generate_state(1)[0])
            batches = iter(self.loader(train_set, order, torch.Generator().manual_seed(seed)))
            while self.step < total and self.step_in_epoch < steps_per_epoch:
                self.train_step(model, batches, optimizer, scheduler, scaler)
                self.step, self.step_in_epoch, self.window_steps = (
                    self.step + 1,
                    self.step_in_epoch + 1,
                    self.window_steps + 1,
                )
                epoch = self.epoch
                if self.step_in_epoch == steps_per_epoch:
                    self.epoch, self.step_in_epoch = self.epoch + 1, 0
                if self.bar is not None:
                    self.bar.update(1)
                done, stop = self.step == total, self.any_rank(self.stop.requested)
                paused = time.perf_counter()
                if self.step % cfg.log_every == 0 or done:
                    self.log_train(epoch, optimizer)
                evaluate = val_set is not None and (done or (cfg.eval_every and self.step % cfg.eval_every == 0))
                improved = bool(evaluate) and self.evaluate(raw, val_set, epoch)
                last = self.step % cfg.save_every == 0 or done or stop
                if last or improved:
                    self.save(raw, optimizer, scheduler, scaler, last, improved)
                self.t0 += time.perf_counter() - paused
                if stop:
                    raise KeyboardInterrupt(f"interrupted at step {self.step}; wrote {self.last_good}; use --resume")
                if self.step_in_epoch == 0:
                    break
        if val_set is not None and self.eval_step != self.step:
            self.evaluate(raw, val_set, self.epoch)
        return FitResult(model=raw, run_dir=self.run_dir, step=self.step, metrics=self.metrics)


def fit(task: TrainTask, cfg: TrainerConfig) -> FitResult:
    """Train ``task`` with ``cfg`` (one process, or every process of a ``torchrun`` launch); see the module doc.

    Raises :class:`TrainingError` (a ``ValueError``) for user errors, :class:`NonFiniteLossError` for a NaN/Inf loss,
    and ``KeyboardInterrupt`` after writing ``last.pt`` when interrupted by Ctrl-C or SIGTERM.
    """
    with _determinism(cfg.deterministic), _stop_request() as stop:
        run = _Run(task, cfg, _setup_world(cfg.device), stop)
        try:
            return run.run()
        finally:
            run.close()
