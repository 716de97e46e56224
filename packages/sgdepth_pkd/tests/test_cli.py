from semcommon.testing import check_cli
from sgdepth_pkd.cli import main


def test_subcommands_have_help_and_unknown_fails(capsys):
    check_cli(main, ["train", "evaluate", "predict", "demo"], capsys)


def test_commands_of_a_later_issue_say_so(capsys):
    assert main(["train"]) == 2
    assert "sgdepth-pkd train: not implemented yet" in capsys.readouterr().err
