from semcommon.testing import check_cli
from ssp.cli import main

COMMANDS = ["train", "evaluate", "predict", "demo", "prepare-uavid", "prepare-ruralscapes", "save-logits", "synthetic"]


def test_subcommands_have_help_and_unknown_fails(capsys):
    """Every command listed here is also run for real: train/save-logits (test_train), evaluate/predict
    (test_evaluate_predict), prepare-* (test_data), demo (test_bad_input), synthetic (test_readme)."""
    check_cli(main, COMMANDS, capsys)
