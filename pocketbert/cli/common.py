"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import sys

from pocketbert.core.options import comma_list, int_list
from pocketbert.errors import PocketbertError

__all__ = ["comma_list", "int_list"]


TOKENIZER_HELP = "tokenizer dir or hub id, when MODEL has no tokenizer files of its own"


def add_model_args(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """MODEL plus --task / --num-labels / --seed / --tokenizer."""
    if positional:
        parser.add_argument(
            "model",
            nargs="?",
            default=None,
            metavar="MODEL",
            help="hub id, local save_pretrained dir, random:distilbert-base-uncased, random:bert-base-uncased; "
            "omitted: the embedded all-MiniLM-L6-v2",
        )
    parser.add_argument(
        "--task",
        default=None,
        help="feature-extraction, sequence-classification, question-answering, token-classification "
        "(default: from the checkpoint's architectures)",
    )
    parser.add_argument("--num-labels", type=int, default=None, help="labels for a new classification head")
    parser.add_argument("--seed", type=int, default=0, help="seed of random: presets (default 0)")
    parser.add_argument("--tokenizer", default=None, help=TOKENIZER_HELP)


def say(message: str, quiet: bool = False) -> None:
    """Progress on stderr, so stdout stays machine-readable."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def require_positive(value: int | None, what: str) -> None:
    if value is not None and value < 1:
        raise PocketbertError(f"{what} must be at least 1, got {value}")
