"""semcommon.training: exact resume after SIGKILL, torchrun DDP, atomic checkpoints, configs, failures, CLI.

The subprocess tests import this file (``sys.path`` + ``import test_training``) for the toy task.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from semcommon.checkpoint import load_checkpoint
from semcommon.cli import dispatch, package_parser, train_handler
from semcommon.training import (
    FitResult,
    NonFiniteLossError,
    TrainerConfig,
    TrainingError,
    TrainTask,
    add_train_arguments,
    fit,
    load_config,
    parse_value,
    trainer_config_from_args,
)

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@dataclass
class OptimConfig:
    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.99)
    milestones: list[int] = field(default_factory=lambda: [6, 18])


@dataclass
class ToyConfig:
    width: int = 4
    dropout: float = 0.2
    samples: int = 48
    mode: Literal["plain", "nan"] = "plain"
    bad_steps: list[int] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    note: str | None = None


class ToyData(Dataset):
    """2×4×4 images, a scalar target; every RNG (python, numpy, torch) jitters the samples."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, 4, 4, generator=g)
        self.y = self.x.mean(dim=(1, 2, 3)) * 3 + 0.5

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        jitter = 0.01 * (torch.rand(()) + float(np.random.rand()) + random.random())
        return {"image": self.x[i] + jitter, "target": self.y[i]}


class ToyTask(TrainTask):
    """Conv → ReLU → dropout → linear regression; AdamW + MultiStepLR; MSE metric."""

    def __init__(self, config: ToyConfig | None = None) -> None:
        self.config = config or ToyConfig()
        self.seen_weights: dict[int, torch.Tensor] = {}

    def build_model(self) -> nn.Module:
        c = self.config
        return nn.Sequential(
            nn.Conv2d(2, c.width, 3, padding=1),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Flatten(),
            nn.Linear(16 * c.width, 1),
        )

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=self.config.optim.lr, betas=self.config.optim.betas)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, self.config.optim.milestones, gamma=0.5)

    def train_dataset(self) -> Dataset:
        return ToyData(self.config.samples, 0)

    def val_dataset(self) -> Dataset:
        return ToyData(8, 1)

    def training_step(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        self.seen_weights.setdefault(step, next(model.parameters()).detach().clone())
        pred = model(batch["image"]).squeeze(1)
        loss = (pred - batch["target"]).pow(2).mean()
        if self.config.mode == "nan" and step in self.config.bad_steps:
            loss = loss * float("nan")
        return loss, {"abs_err": (pred - batch["target"]).abs().mean()}

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        errors = [(model(b["image"]).squeeze(1) - b["target"]).pow(2) for b in loader]
        return {"mse": torch.cat(errors).mean().item()}


def trainer(run_dir: Path, **kw) -> TrainerConfig:
    base = {"run_dir": str(run_dir), "max_steps": 6, "batch_size": 4, "save_every": 2, "log_every": 1, "quiet": True}
    return TrainerConfig(**{**base, "device": "cpu", **kw})


def lines(run_dir: Path, kind: str = "train") -> list[dict]:
    records = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == kind]


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------ exact resume, SIGKILL


def resume_config(run_dir: Path | str, resume: bool) -> TrainerConfig:
    """48 samples / batch 4 = 12 steps per epoch, 2 epochs, a checkpoint every 4 steps, the last 2 kept."""
    return trainer(run_dir, max_steps=None, epochs=2, save_every=4, keep_last=2, seed=3, resume=resume)


RESUME_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
import semcommon.checkpoint
from semcommon.training import fit
from test_training import ToyTask, resume_config

mode, kill_at, run_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Task(ToyTask):
    def training_step(self, model, batch, step):
        if mode == "step" and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().training_step(model, batch, step)

real_save = torch.save
def dying_save(obj, f, *args, **kwargs):
    if mode == "save" and obj.get("step") == kill_at:
        f.write(b"half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
semcommon.checkpoint.torch.save = dying_save

fit(Task(), resume_config(run_dir, resume=sys.argv[4] == "1"))
"""


def run_resume_script(tmp_path: Path, mode: str, kill_at: int, run_dir: Path, resume: bool) -> int:
    script = tmp_path / "resume_script.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(TESTS)))
    args = [sys.executable, str(script), mode, str(kill_at), str(run_dir), "1" if resume else "0"]
    proc = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    return proc.returncode


def without_speed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses
    try:
        fit(ToyTask(), resume_config(tmp_path / "uninterrupted", resume=False))
    finally:
        torch.set_num_threads(threads)
    # kill -9 in the middle of writing a checkpoint, resume, kill -9 at a random step, resume to the end
    in_save = random.choice([8, 12])
    at_step = random.randint(in_save + 1, 22)
    run, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints"
    assert run_resume_script(tmp_path, "save", in_save, run, False) == -signal.SIGKILL
    assert load_checkpoint(ckpt / "last.pt")["step"] == in_save - 4, "the previous checkpoint must survive"
    assert list(ckpt.glob(".*.tmp")), "the killed save leaves its temporary file"
    assert run_resume_script(tmp_path, "step", at_step, run, True) == -signal.SIGKILL, f"not killed at {at_step}"
    assert load_checkpoint(ckpt / "last.pt")["step"] == at_step // 4 * 4
    assert run_resume_script(tmp_path, "none", -1, run, True) == 0

    ours = load_checkpoint(ckpt / "last.pt")
    ref = load_checkpoint(tmp_path / "uninterrupted" / "checkpoints" / "last.pt")
    assert ours["step"] == ref["step"] == 24 and ours["epoch"] == ref["epoch"] == 2
    for key, value in ref["model"].items():
        assert torch.equal(ours["model"][key], value), f"{key} differs after kills at {in_save} (save), {at_step}"
    for idx, state in ref["optimizer"]["state"].items():
        assert torch.equal(ours["optimizer"]["state"][idx]["exp_avg_sq"], state["exp_avg_sq"])
    assert ours["scheduler"] == ref["scheduler"]
    assert without_speed(lines(run)) == without_speed(lines(tmp_path / "uninterrupted"))
    assert lines(run, "eval") == lines(tmp_path / "uninterrupted", "eval")
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt", "step-00000020.pt", "step-00000024.pt"]


def test_resume_after_max_steps_matches_one_run(tmp_path):
    whole = fit(ToyTask(), resume_config(tmp_path / "whole", resume=False))
    fit(ToyTask(), replace(resume_config(tmp_path / "split", resume=False), max_steps=10))  # evaluates at step 10
    split = fit(ToyTask(), resume_config(tmp_path / "split", resume=True))
    assert split.step == whole.step == 24
    for key, value in whole.model.state_dict().items():
        assert torch.equal(split.model.state_dict()[key], value), key
    assert without_speed(lines(tmp_path / "split"))[-1] == without_speed(lines(tmp_path / "whole"))[-1]


# ------------------------------------------------------------------------------------------------ torchrun DDP

DDP_SCRIPT = """
import os, sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from semcommon.training import TrainerConfig, fit
from test_training import ToyConfig, ToyTask

class Task(ToyTask):
    def training_step(self, model, batch, step):
        loss, logs = super().training_step(model, batch, step)
        if self.config.mode == "nan" and step in self.config.bad_steps and dist.get_rank() == 1:
            loss = loss * float("inf")  # only on rank 1: both ranks must skip the step together
        return loss, {{**logs, "rank": float(dist.get_rank())}}

def cfg(run_dir, **kw):
    base = dict(run_dir=run_dir, max_steps=6, batch_size=4, save_every=3, log_every=2, quiet=True)
    return TrainerConfig(**{{**base, "device": "cpu", **kw}})

root, rank = sys.argv[1], os.environ["RANK"]
whole = fit(Task(), cfg(os.path.join(root, "whole")))  # fit sets the process group up (gloo on CPU)
torch.save(whole.model.state_dict(), os.path.join(root, f"whole-rank{{rank}}.pt"))
with open(os.path.join(root, f"metrics-rank{{rank}}.json"), "w") as f:
    f.write(str(whole.metrics["mse"]))
fit(Task(), cfg(os.path.join(root, "split"), max_steps=3))  # later fits in the process reuse the group
split = fit(Task(), cfg(os.path.join(root, "split"), resume=True))
torch.save(split.model.state_dict(), os.path.join(root, f"split-rank{{rank}}.pt"))
skipped = fit(Task(ToyConfig(mode="nan", bad_steps=[1])), cfg(os.path.join(root, "nan"), skip_nonfinite=True))
torch.save(skipped.model.state_dict(), os.path.join(root, f"nan-rank{{rank}}.pt"))
"""


def test_torchrun_two_processes_gloo(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(DDP_SCRIPT.format(tests=str(TESTS)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*cmd, str(script), str(tmp_path)], env=env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = tmp_path / "whole"
    rank0, rank1 = torch.load(tmp_path / "whole-rank0.pt"), torch.load(tmp_path / "whole-rank1.pt")
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    split = [torch.load(tmp_path / f"split-rank{r}.pt") for r in (0, 1)]
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
        assert torch.equal(value, saved["model"][key]), key
        assert torch.equal(value, split[0][key]) and torch.equal(value, split[1][key]), f"resume changed {key}"
    assert (tmp_path / "metrics-rank0.json").read_text() == (tmp_path / "metrics-rank1.json").read_text()
    assert len(saved["rng"]) == 2 and not torch.equal(saved["rng"][0]["torch"], saved["rng"][1]["torch"])

    train = lines(run)  # one line per logged step: only rank 0 writes, values averaged over both ranks
    assert [r["step"] for r in train] == [2, 4, 6]
    assert all(r["rank"] == 0.5 for r in train)
    assert [r["step"] for r in lines(run, "eval")] == [6]
    assert [r["step"] for r in lines(tmp_path / "split")] == [2, 3, 4, 6]
    assert [r["step"] for r in lines(tmp_path / "split", "eval")] == [3, 6]  # evaluating does not move the RNGs
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    nan0, nan1 = torch.load(tmp_path / "nan-rank0.pt"), torch.load(tmp_path / "nan-rank1.pt")
    assert all(torch.equal(v, nan1[k]) and torch.isfinite(v).all() for k, v in nan0.items())
    assert [r["skipped"] for r in lines(tmp_path / "nan")] == [1, 1, 1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "last.pt",
        "step-00000003.pt",
        "step-00000006.pt",
    ]


# ----------------------------------------------------------------------------------------- checkpoints on disk


def test_checkpoint_contents_keep_last_and_best(tmp_path):
    result = fit(
        ToyTask(),
        trainer(
            tmp_path,
            max_steps=8,
            save_every=2,
            eval_every=2,
            keep_last=2,
            best_metric="mse",
            best_higher_is_better=False,
        ),
    )
    assert isinstance(result, FitResult) and result.step == 8 and result.run_dir == tmp_path
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "last.pt", "step-00000006.pt", "step-00000008.pt"]
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert set(last) >= {"model", "optimizer", "scheduler", "scaler", "rng", "step", "epoch", "config", "trainer"}
    assert last["config"]["optim"]["betas"] == [0.9, 0.99] and last["trainer"]["max_steps"] == 8
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in last["model"].items())
    evals = lines(tmp_path, "eval")
    assert [r["step"] for r in evals] == [2, 4, 6, 8] and result.metrics == {"mse": evals[-1]["mse"]}
    best = min(evals, key=lambda r: r["mse"])
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["step"] == best["step"]
    first = lines(tmp_path)[0]
    assert set(first) >= {"step", "epoch", "lr", "loss", "abs_err", "images_per_s", "skipped"}
    assert json.loads((tmp_path / "config.json").read_text())["config"]["width"] == 4


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    fit(ToyTask(), trainer(tmp_path, max_steps=2))
    before = load_checkpoint(tmp_path / "checkpoints" / "last.pt")

    def disk_full(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(TrainingError, match=r"cannot write checkpoint .*step-00000004.pt: No space left"):
        fit(ToyTask(), trainer(tmp_path, max_steps=4, resume=True))
    monkeypatch.undo()
    after = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert after["step"] == 2 and all(torch.equal(after["model"][k], v) for k, v in before["model"].items())
    assert not list((tmp_path / "checkpoints").glob(".*"))


def test_run_folder_errors_come_before_training(tmp_path, monkeypatch):
    task = ToyTask()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(TrainingError, match=r"run folder .*a_file/run is not writable"):
        fit(task, trainer(blocker / "run"))
    with pytest.raises(TrainingError, match=r"--resume: no checkpoint at .*last.pt"):
        fit(task, trainer(tmp_path / "fresh", resume=True))
    monkeypatch.setattr("shutil.disk_usage", lambda path: type("U", (), {"free": 10})())
    with pytest.raises(TrainingError, match="MiB free"):
        fit(task, trainer(tmp_path / "full"))
    assert task.seen_weights == {}


def test_existing_run_is_not_overwritten_without_flag(tmp_path):
    fit(ToyTask(), trainer(tmp_path, max_steps=2))
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.1.host").write_text("")  # as TensorBoard would have left
    with pytest.raises(TrainingError, match=f"run folder {tmp_path} already holds a run"):
        fit(ToyTask(), trainer(tmp_path, max_steps=2))
    fit(ToyTask(), trainer(tmp_path, max_steps=4, overwrite=True, save_every=4, keep_last=0))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.pt"]
    assert [r["step"] for r in lines(tmp_path)] == [1, 2, 3, 4] and not list((tmp_path / "tb").iterdir())


def test_init_loads_weights_only(tmp_path):
    stage1 = fit(ToyTask(), trainer(tmp_path / "s1", max_steps=3))
    task = ToyTask()
    stage2 = fit(task, trainer(tmp_path / "s2", max_steps=2, init=str(tmp_path / "s1" / "checkpoints" / "last.pt")))
    assert torch.equal(task.seen_weights[0], next(stage1.model.parameters()))
    assert stage2.step == 2 and [r["step"] for r in lines(tmp_path / "s2")] == [1, 2]
    state = load_checkpoint(tmp_path / "s2" / "checkpoints" / "last.pt")
    assert state["scheduler"]["last_epoch"] == 2 and state["optimizer"]["state"][0]["step"].item() == 2
    torch.save({"model": {"other.weight": torch.zeros(1)}}, tmp_path / "wrong.pt")
    with pytest.raises(TrainingError, match="no weight fits the model"):
        fit(ToyTask(), trainer(tmp_path / "s3", init=str(tmp_path / "wrong.pt")))


# ---------------------------------------------------------------------------------------------------- failures


def test_nonfinite_loss_stops_naming_step_and_checkpoint(tmp_path):
    task = ToyTask(ToyConfig(mode="nan", bad_steps=[4]))
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss at step 5; last good checkpoint: .*last.pt \(step 4\)"
    ):
        fit(task, trainer(tmp_path))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 4


def test_nonfinite_loss_skipped_and_counted(tmp_path):
    task = ToyTask(ToyConfig(mode="nan", bad_steps=[1, 2]))
    result = fit(task, trainer(tmp_path, skip_nonfinite=True))
    assert result.step == 6 and all(torch.isfinite(p).all() for p in result.model.parameters())
    assert [r["skipped"] for r in lines(tmp_path)] == [0, 1, 2, 2, 2, 2]
    assert "loss" not in lines(tmp_path)[1] and "loss" in lines(tmp_path)[3]


def test_interrupt_writes_last_then_resume_finishes(tmp_path):
    class Interrupted(ToyTask):
        def training_step(self, model, batch, step):
            if step == 2:
                signal.raise_signal(signal.SIGINT)
            return super().training_step(model, batch, step)

    with pytest.raises(KeyboardInterrupt, match="interrupted at step 3"):
        fit(Interrupted(), trainer(tmp_path, save_every=100))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert fit(ToyTask(), trainer(tmp_path, save_every=100, resume=True)).step == 6


def test_ctrl_c_in_a_terminal_spares_the_loader_workers(tmp_path):
    # A terminal's Ctrl-C reaches the whole process group, the loader workers too; they must keep serving the batches
    # of the step being finished (forked workers inherit the frame's handler, others ignore SIGINT via worker_init_fn).
    class CtrlC(ToyTask):
        def training_step(self, model, batch, step):
            if step == 1 and not self.seen_weights.get(-1):
                self.seen_weights[-1] = True  # once: a second Ctrl-C stops at once
                for worker in multiprocessing.active_children():
                    os.kill(worker.pid, signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
            return super().training_step(model, batch, step)

    cfg = trainer(tmp_path, save_every=100, num_workers=2, grad_accum=8, batch_size=1)  # more than prefetched
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 2"):
        fit(CtrlC(), cfg)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 2


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_speed_switches_run(tmp_path, amp):
    class Checked(ToyTask):
        def training_step(self, model, batch, step):
            assert batch["image"].is_contiguous(memory_format=torch.channels_last)
            assert model(batch["image"]).dtype == (torch.bfloat16 if amp == "bf16" else torch.float16)
            return super().training_step(model, batch, step)

    cfg = trainer(tmp_path, amp=amp, grad_accum=2, clip_grad=0.5, channels_last=True, max_steps=3)
    result = fit(Checked(), cfg)
    assert result.step == 3 and [r["step"] for r in lines(tmp_path)] == [1, 2, 3]
    assert result.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    scaler = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["scaler"]
    assert (scaler is None) == (amp == "bf16")


def test_clip_grad_bounds_the_update(tmp_path):
    class Sgd(ToyTask):
        def build_optimizer(self, model):
            return torch.optim.SGD(model.parameters(), lr=1.0)

        def training_step(self, model, batch, step):
            self.before = [p.detach().clone() for p in model.parameters()]
            return super().training_step(model, batch, step)

    def update_norm(clip: float | None) -> float:
        task = Sgd(ToyConfig(dropout=0.0))
        result = fit(task, trainer(tmp_path / str(clip), max_steps=1, clip_grad=clip))
        deltas = [(p - b).flatten() for p, b in zip(result.model.parameters(), task.before, strict=True)]
        return torch.cat(deltas).norm().item()

    assert update_norm(1e-3) == pytest.approx(1e-3, rel=1e-3)
    assert update_norm(None) > 0.1


def test_data_loader_workers_are_deterministic(tmp_path):
    runs = [fit(ToyTask(), trainer(tmp_path / str(i), max_steps=2, num_workers=1)) for i in range(2)]
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(value, runs[1].model.state_dict()[key]), key
    assert without_speed(lines(tmp_path / "0")) == without_speed(lines(tmp_path / "1"))


def test_compile_wraps_the_model(tmp_path, monkeypatch):
    compiled = []

    def eager_compile(model, **kwargs):  # torch.compile with the eager backend: dynamo without a C++ build
        compiled.append(model)
        return real_compile(model, backend="eager", **kwargs)

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", eager_compile)
    seen = []

    class Seen(ToyTask):
        def training_step(self, model, batch, step):
            seen.append(model)
            return super().training_step(model, batch, step)

    result = fit(Seen(), trainer(tmp_path, compile=True, max_steps=2))
    assert compiled == [result.model] and all(hasattr(m, "_orig_mod") for m in seen)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"].keys() == result.model.state_dict().keys()


def test_console_progress_and_tensorboard(tmp_path, monkeypatch, capsys):
    scalars = []

    class Writer:
        def __init__(self, log_dir, purge_step=None):
            scalars.append(log_dir)

        def add_scalar(self, tag, value, step):
            scalars.append((tag, step))

        def close(self):
            scalars.append("closed")

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", type(sys)("fake_tensorboard"))
    sys.modules["torch.utils.tensorboard"].SummaryWriter = Writer
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fit(ToyTask(), trainer(tmp_path / "run", quiet=False, max_steps=4, log_every=2))
    out, err = capsys.readouterr()
    assert "4/4" in err and "kind train step 4" in out
    assert scalars[0] == str(tmp_path / "run" / "tb") and scalars[-1] == "closed"
    assert ("train/loss", 2) in scalars and ("train/images_per_s", 4) in scalars and ("eval/mse", 4) in scalars
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    fit(ToyTask(), trainer(tmp_path / "quiet", max_steps=2))
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------------------------------------ config


def test_config_file_round_trip_overrides_and_unknown_keys(tmp_path):
    authors = tmp_path / "authors.yaml"
    authors.write_text("width: 8\noptim:\n  lr: 1e-4\n  betas: [0.8, 0.9]\nnote: paper\n")
    cfg = load_config(ToyConfig, authors, ["optim.milestones=[1, 2]", "dropout=0", "note=null", "mode=nan"])
    assert cfg == ToyConfig(width=8, dropout=0.0, mode="nan", optim=OptimConfig(1e-4, (0.8, 0.9), [1, 2]))
    dumped = tmp_path / "dumped.json"
    fit_dir = tmp_path / "run"
    fit(ToyTask(cfg), trainer(fit_dir, max_steps=1))
    stored = json.loads((fit_dir / "config.json").read_text())["config"]
    dumped.write_text(json.dumps(stored))
    assert load_config(ToyConfig, dumped) == cfg
    with pytest.raises(ValueError, match=r"unknown config key optim\.momentum"):
        load_config(ToyConfig, authors, ["optim.momentum=0.9"])
    (tmp_path / "bad.json").write_text('{"widht": 3}')
    with pytest.raises(ValueError, match="unknown config key widht"):
        load_config(ToyConfig, tmp_path / "bad.json")
    with pytest.raises(ValueError, match="config key width: expected int"):
        load_config(ToyConfig, None, ["width=wide"])
    with pytest.raises(ValueError, match="config key mode: 'fast' is not one of"):
        load_config(ToyConfig, None, ["mode=fast"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        load_config(ToyConfig, None, ["width"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(ToyConfig, tmp_path / "missing.json")


def test_parse_value_literal_rule():
    assert parse_value("1e-4") == 1e-4 and parse_value("3") == 3 and parse_value("true") is True
    assert parse_value("null") is None and parse_value("None") is None and parse_value("[1, 2]") == [1, 2]
    assert parse_value("(1, 2)") == (1, 2) and parse_value("adamw") == "adamw" and parse_value("'a b'") == "a b"


# --------------------------------------------------------------------------------------------------------- CLI


def test_train_command_line(tmp_path, capsys):
    parser, sub = package_parser("toy", "a toy package")
    add_train_arguments(sub.choices["train"], run_dir=str(tmp_path / "default"))
    args = parser.parse_args(["train", "--max-steps", "2", "--set", "width=2", "--quiet", "--device", "cpu"])
    cfg = trainer_config_from_args(args, batch_size=4, save_every=1)
    assert (cfg.max_steps, cfg.batch_size, cfg.save_every, cfg.amp, cfg.quiet) == (2, 4, 1, "off", True)
    assert cfg.run_dir == str(tmp_path / "default")
    bare = argparse.ArgumentParser()
    add_train_arguments(bare)
    assert trainer_config_from_args(bare.parse_args([]), run_dir="runs/pkg").run_dir == "runs/pkg"
    epochs = trainer_config_from_args(bare.parse_args(["--epochs", "3"]), max_steps=500)
    assert (epochs.epochs, epochs.max_steps) == (3, None)

    def make_task(a: argparse.Namespace) -> ToyTask:
        return ToyTask(load_config(ToyConfig, a.config, a.set))

    handlers = {"train": train_handler(make_task, batch_size=4)}
    assert dispatch("toy", args, handlers) == 0
    assert load_checkpoint(tmp_path / "default" / "checkpoints" / "last.pt")["config"]["width"] == 2
    assert "step: 2" in capsys.readouterr().out
    assert dispatch("toy", args, handlers) == 1  # the run folder holds a run now
    assert "already holds a run" in capsys.readouterr().err

    class Interrupted(ToyTask):
        def training_step(self, model, batch, step):
            if step == 0:
                signal.raise_signal(signal.SIGINT)
            return super().training_step(model, batch, step)

    handlers = {"train": train_handler(lambda a: Interrupted(), batch_size=4)}
    interrupted = parser.parse_args(["train", "--run-dir", str(tmp_path / "ctrl-c"), "--quiet", "--device", "cpu"])
    assert dispatch("toy", interrupted, handlers) == 130
    assert capsys.readouterr().err.startswith("toy train: interrupted at step 1; wrote ")
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--amp", "fp8"])
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--max-steps", "-1"])
