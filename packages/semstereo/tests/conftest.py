"""Shared fixtures: one tiny trained checkpoint (1 step, width-0.5 backbone, 64×64 synthetic tiles)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semstereo.cli import main

TINY = [
    "--set",
    "model.backbone=mobilevitv2_050",
    "--set",
    "data.synthetic_train=2",
    "--set",
    "data.synthetic_test=2",
    "--batch-size",
    "1",
    "--quiet",
]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("tiny_run")
    assert main(["train", "--data", "synthetic", "--run-dir", str(run_dir), "--max-steps", "1", *TINY]) == 0
    return run_dir / "checkpoints" / "last.pt"
