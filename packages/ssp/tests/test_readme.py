"""The README's quick-start commands, run as written (from a folder where ``packages/`` is the repository's)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from ssp.cli import main

PACKAGE = Path(__file__).resolve().parents[1]


def _quickstart_lines() -> list[str]:
    text = (PACKAGE / "README.md").read_text()
    block = text.split("<!-- quickstart", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines() if line.startswith("ssp ")]


def test_readme_quickstart_runs_as_written(tmp_path, monkeypatch) -> None:
    (tmp_path / "packages").symlink_to(PACKAGE.parent, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    lines = _quickstart_lines()
    assert len(lines) == 8
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    quick = tmp_path / "runs" / "quick"
    assert json.loads((quick / "ssp" / "checkpoints" / "eval_val" / "metrics.json").read_text())["TC"] is not None
    assert json.loads((quick / "eval_data" / "metrics.json").read_text())["labelled_frames"] == 8
    assert len(os.listdir(quick / "pred" / "masks")) == 4
    assert len(list((quick / "teacher_logits").glob("*/*.npz"))) == 8
