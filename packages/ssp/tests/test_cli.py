from semcommon.testing import check_cli
from ssp.cli import main

COMMANDS = ["train", "evaluate", "predict", "demo", "prepare-uavid", "prepare-ruralscapes", "save-logits"]


def test_subcommands_have_help_and_unknown_fails(capsys):
    """Every command listed here is also run for real: train/save-logits (test_train), evaluate/predict
    (test_evaluate_predict), prepare-* (test_data), demo (test_bad_input)."""
    check_cli(main, COMMANDS, capsys)
