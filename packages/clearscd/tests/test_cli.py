from clearscd.cli import main
from semcommon.testing import check_cli


def test_subcommands_have_help_and_unknown_fails(capsys):
    check_cli(main, ["train", "evaluate", "predict", "demo"], capsys)


def test_demo_prints_paper_model_summary(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "params: 5780499" in out
    assert "BCD: [1, 1, 256, 256]" in out
