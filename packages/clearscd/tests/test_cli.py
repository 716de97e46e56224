"""The CLI frame: unknown command and missing or out-of-range arguments exit 2 (the demo runs in test_readme)."""

from __future__ import annotations

import pytest

from clearscd.cli import main


@pytest.mark.parametrize("argv", [["no-such-command"], ["demo", "--steps", "0"], []])
def test_bad_command_lines_exit_2(argv) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
