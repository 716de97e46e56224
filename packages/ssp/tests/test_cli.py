from semcommon.testing import check_cli
from ssp.cli import main


def test_subcommands_have_help_and_unknown_fails(capsys):
    check_cli(main, ["train", "evaluate", "predict", "demo"], capsys)
