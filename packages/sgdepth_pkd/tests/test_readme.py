"""The README's command examples run as written (in a scratch folder; `demo` is run at a tiny setting in
test_cli.py because its default recipe takes about two minutes)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np

from semcommon.io import write_image
from sgdepth_pkd.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[list[str]]:
    text = README.read_text()
    block = text[text.index("## Commands") :]
    block = block[: block.index("```", block.index("```") + 3)]
    return [shlex.split(line)[1:] for line in block.splitlines() if re.match(r"^sgdepth-pkd \w", line)]


def test_readme_commands_run_as_written(tmp_path, monkeypatch) -> None:
    commands = _commands()
    assert [c[0] for c in commands] == ["train", "train", "evaluate", "predict", "export", "demo"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        write_image(tmp_path / "frames" / f"{index:06d}.png", rng.integers(0, 255, (40, 90, 3), dtype=np.uint8))
    for command in commands[:-1]:
        assert main(command) == 0, command
    assert (tmp_path / "runs/eval-sgdepth_pkd/metrics.json").is_file()
    assert (tmp_path / "runs/predict-sgdepth_pkd/poses.txt").is_file()
    assert (tmp_path / "runs/sgdepth.onnx").is_file()
