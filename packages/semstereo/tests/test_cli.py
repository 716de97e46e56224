"""Command-line errors: an unknown sub-command or a bad option exits 2 (the CLI frame's rule). The commands
themselves run for real in test_train.py, test_evaluate_predict.py, test_demo.py and test_bad_input.py."""

from __future__ import annotations

import pytest

from semstereo.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["evaluate", "--data", "synthetic"],  # --checkpoint is required
        ["predict", "--checkpoint", "x.ckpt", "only_left.png"],  # right image missing
        ["train", "--max-steps", "-1"],
        ["train", "--stage", "second"],
        ["evaluate", "--checkpoint", "x.ckpt", "--variant", "kitti"],
    ],
)
def test_bad_command_lines_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
