"""A 2-process ``torchrun`` CPU run of ``clearscd train`` on synthetic data finishes and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from .conftest import SMALL

TINY = [f"--set={k}={v}" for k, v in SMALL.items()]
TINY += ["--set=synthetic_samples=8", "--set=synthetic_val_samples=2", "--set=synthetic_size=64"]
TINY += ["--batch-size=2", "--quiet", "--device=cpu", "--data=synthetic"]


def _torchrun(run_dir, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "clearscd", "train", f"--run-dir={run_dir}", *TINY, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, check=False)


def test_torchrun_two_processes_train_and_resume(tmp_path) -> None:
    run = tmp_path / "ddp"
    first = _torchrun(run, "--max-steps=1")
    assert first.returncode == 0, first.stderr[-2000:]
    second = _torchrun(run, "--max-steps=2", "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    assert len(second.stdout.strip().splitlines()) == 1  # the summary line comes from rank 0 only
    assert json.loads(second.stdout)["step"] == 2
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2 and "queue_A0" in state["model"]
