from semcommon.testing import check_cli
from semstereo.cli import main


def test_subcommands_have_help_and_unknown_fails(capsys):
    check_cli(main, ["train", "evaluate", "predict", "demo"], capsys)


def test_demo_runs_paper_model(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "params: 38137434" in out and "disparity: (1, 128, 128)" in out
