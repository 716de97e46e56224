import argparse

import pytest

from semcommon.cli import STANDARD_COMMANDS, dispatch, package_parser, print_row


def test_package_parser_has_standard_commands_and_custom_slot():
    parser, sub = package_parser("toy", "a toy package", custom=("predict",))
    assert set(sub.choices) == set(STANDARD_COMMANDS) - {"predict"}
    sub.add_parser("predict").add_argument("image")
    assert parser.parse_args(["predict", "a.png"]).image == "a.png"
    assert parser.parse_args(["demo"]).device == "cpu"
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_dispatch_routes_errors_and_missing_handlers(capsys):
    def fails(args: argparse.Namespace) -> int:
        raise FileNotFoundError(f"{args.path}: no such file")

    handlers = {"predict": fails, "demo": lambda args: 0}
    assert dispatch("toy", argparse.Namespace(command="predict", path="x.png"), handlers) == 1
    assert capsys.readouterr().err.strip() == "toy predict: x.png: no such file"
    assert dispatch("toy", argparse.Namespace(command="train"), handlers) == 2
    assert "toy train: not implemented yet" in capsys.readouterr().err
    assert dispatch("toy", argparse.Namespace(command="demo"), handlers) == 0


def test_dispatch_lets_unexpected_errors_through():
    def bug(args: argparse.Namespace) -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        dispatch("toy", argparse.Namespace(command="demo"), {"demo": bug})


def test_print_row(capsys):
    print_row({"model": "m", "params": 3})
    assert capsys.readouterr().out == "model: m\nparams: 3\n"


def test_check_cli_accepts_a_package_cli_and_catches_a_broken_one(capsys):
    from semcommon.testing import check_cli

    parser, _ = package_parser("toy", "a toy package")

    def main(argv):
        return dispatch("toy", parser.parse_args(argv), {})

    check_cli(main, list(STANDARD_COMMANDS), capsys)
    with pytest.raises(AssertionError, match="fly --help exited 2"):  # not a command of this CLI
        check_cli(main, ["fly"], capsys)
