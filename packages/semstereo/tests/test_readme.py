"""Every ``semstereo`` command line of the README is accepted by the parser as written (the commands themselves
run for real, on tiny data, in test_train.py, test_evaluate_predict.py, test_demo.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

from semstereo.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _command_lines() -> list[list[str]]:
    lines = []
    for line in README.read_text().splitlines():
        words = shlex.split(line.split("#")[0]) if "semstereo " in line else []
        if words and words[0] == "semstereo":
            lines.append(words[1:])
        elif words[:4] == ["torchrun", "--nproc_per_node", "2", "-m"] and words[4] == "semstereo":
            lines.append(words[5:])
    return lines


def test_readme_commands_parse() -> None:
    commands = _command_lines()
    assert {c[0] for c in commands} == {"train", "evaluate", "predict", "prepare-us3d", "demo", "export"}
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)
