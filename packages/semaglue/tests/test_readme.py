"""Every ``semaglue ...`` command line in the README parses with the real parser (the commands that need no
downloaded weights or datasets are run for real in the other test files)."""

from __future__ import annotations

import shlex
from pathlib import Path

from semaglue.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[list[str]]:
    text = README.read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.strip()) if line.strip().startswith(("semaglue ", "torchrun ")) else []
        if words and "semaglue" in words:
            words = words[words.index("semaglue") + 1 :]
            commands.append([w for w in words if not (w.startswith("[") or w.endswith("]"))])
    return commands


def test_readme_commands_parse() -> None:
    commands = _commands()
    names = {c[0] for c in commands if c and not c[0].startswith("-")}
    assert {"demo", "train", "predict", "evaluate", "match-pairs"} <= names
    parser = build_parser()
    for words in commands:
        if words[0] == "--help":
            continue
        args = parser.parse_args(words)
        assert args.command == words[0]
