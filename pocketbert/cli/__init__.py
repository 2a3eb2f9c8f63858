"""The ``pocketbert`` command line: one subcommand module per pipeline stage.

Each module in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
handler ``(args) -> exit code``. User errors (:class:`PocketbertError`) print one line and exit with 2; SIGINT and
SIGTERM stop the command (see :mod:`pocketbert.interrupts`) with exit 130 / 143.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pocketbert import __version__, interrupts
from pocketbert.errors import PocketbertError
from pocketbert.quiet import quiet_third_party

COMMANDS: tuple[str, ...] = ("run", "export", "parity", "bench", "bundle", "goldens", "diagnose", "kernels", "distill")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketbert",
        description="Export distilled BERT-family students to ONNX, TFLite (LiteRT) and Core ML, int8-quantize "
        "them, prove parity with PyTorch, and benchmark them against full BERT.",
    )
    parser.add_argument("--version", action="version", version=f"pocketbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pocketbert.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name == f"pocketbert.cli.{name}_cmd":
                continue  # that stage is not part of this version
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pocketbert`` console script."""
    quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with interrupts.handling():
            return int(args.func(args) or 0)
    except PocketbertError as exc:
        print(f"pocketbert {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"pocketbert {args.command}: interrupted; nothing was changed", file=sys.stderr)
        return exc.exit_code if isinstance(exc, interrupts.Interrupted) else 130
