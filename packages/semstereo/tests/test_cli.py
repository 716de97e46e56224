import pytest

from semstereo.cli import build_parser, main


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "demo"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert command in capsys.readouterr().out


def test_unknown_subcommand_fails():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["fly"])
    assert exc.value.code != 0


def test_demo_runs_paper_model(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "params: 38137434" in out and "disparity: (1, 128, 128)" in out
