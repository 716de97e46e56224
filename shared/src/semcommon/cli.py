"""The command-line frame every package shares: ``<pkg> {train,evaluate,predict,demo}``.

A package builds its parser with :func:`package_parser`, adds its own sub-commands or arguments, and dispatches
with :func:`dispatch`, which turns the expected user errors into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .checkpoint import CheckpointError

STANDARD_COMMANDS = {
    "train": "train a model",
    "evaluate": "evaluate a model on a dataset split",
    "predict": "run a model on your own files",
    "demo": "build the paper model and time one forward pass on a generated input",
}

Handler = Callable[[argparse.Namespace], int]


def add_device_argument(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    """``--device auto|cpu|cuda``."""
    parser.add_argument("--device", default=default, help=f"auto | cpu | cuda (default: {default})")


def package_parser(
    prog: str, description: str, custom: tuple[str, ...] = ()
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A parser with the standard sub-commands, except those in ``custom`` that the package defines itself.

    Returns the parser and its sub-parsers action (``sub.choices[name]`` is a sub-command's parser); ``demo`` takes
    ``--device``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in STANDARD_COMMANDS.items():
        if name not in custom:
            sub.add_parser(name, help=help_text)
    if "demo" not in custom:
        add_device_argument(sub.choices["demo"])
    return parser, sub


def print_row(row: Mapping[str, object]) -> None:
    """Print a ``key: value`` line per entry (the demo summary)."""
    for key, value in row.items():
        print(f"{key}: {value}")


def demo_handler(package: str) -> Handler:
    """Run ``<package>.demo.run_demo(device=...)`` and print its summary row."""

    def handle(args: argparse.Namespace) -> int:
        run_demo = importlib.import_module(f"{package}.demo").run_demo
        print_row(run_demo(device=args.device))
        return 0

    return handle


def train_handler(make_task: Callable[[argparse.Namespace], Any], **trainer_defaults: Any) -> Handler:
    """``train``: ``fit(make_task(args), trainer_config_from_args(args, **trainer_defaults))``, then a summary row.

    The ``train`` parser needs :func:`semcommon.training.add_train_arguments`; rank 0 prints the run folder, the
    step reached and the last evaluation's metrics.
    """

    def handle(args: argparse.Namespace) -> int:
        from .training import fit, trainer_config_from_args

        cfg = trainer_config_from_args(args, **trainer_defaults)
        result = fit(make_task(args), cfg)
        if int(os.environ.get("RANK", "0")) == 0:
            print_row({"run_dir": result.run_dir, "step": result.step, **result.metrics})
        return 0

    return handle


def dispatch(
    prog: str,
    args: argparse.Namespace,
    handlers: Mapping[str, Handler],
    user_errors: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError, CheckpointError),
) -> int:
    """Call the handler of ``args.command``; a user error becomes ``<prog> <command>: <message>`` and exit 1.

    A standard command without a handler prints that it is not implemented yet and exits 2; Ctrl-C prints one line
    (a training run says where it saved) and exits 130.
    """
    handler = handlers.get(args.command)
    if handler is None:
        print(f"{prog} {args.command}: not implemented yet", file=sys.stderr)
        return 2
    try:
        return handler(args)
    except user_errors as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"{prog} {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130
