"""``pocketbert goldens``: golden vectors the sample apps' Kotlin and Swift tests must reproduce."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pocketbert.cli.common import int_list, say
from pocketbert.errors import PocketbertError


def load_tokenizer(model: str | None, from_out: Path | None) -> Any:
    """The Hugging Face fast tokenizer of MODEL (only the tokenizer is loaded), of an OUT dir, or of the default."""
    from transformers import AutoTokenizer

    from pocketbert.exporting.manifest import TOKENIZER_DIR
    from pocketbert.loading import RANDOM_PREFIX, default_model_dir, uncased_tokenizer

    if from_out is not None:
        if model:
            raise PocketbertError("pass MODEL or --from-out OUT, not both")
        location = from_out / TOKENIZER_DIR
        if not location.is_dir():
            raise PocketbertError(
                f"{from_out} has no {TOKENIZER_DIR}/: pass a directory written by 'pocketbert export'"
            )
    elif model and model.startswith(RANDOM_PREFIX):
        return uncased_tokenizer()
    elif model:
        location = Path(model).expanduser()
        if not location.is_dir():
            raise PocketbertError(f"{model} is not a local model directory; goldens never load from the hub")
    else:
        location = default_model_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(location), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise PocketbertError(f"cannot load a tokenizer from {location}: {str(exc).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False) or tokenizer.backend_tokenizer.model.__class__.__name__ != "WordPiece":
        raise PocketbertError(f"the tokenizer in {location} is not a fast WordPiece (BERT) tokenizer")
    return tokenizer


def _run(args: argparse.Namespace) -> int:
    from pocketbert.bundle.goldens import cased_test_tokenizer, tokenizer_settings, write_goldens

    tokenizer = load_tokenizer(args.model, args.from_out)
    name = "uncased" if tokenizer_settings(tokenizer)["lowercase"] else "model-cased"
    tokenizers = {name: tokenizer}
    if args.cased_test_vocab:
        tokenizers["cased"] = cased_test_tokenizer()
    written = write_goldens(args.output, tokenizers, args.buckets)
    for path in written:
        print(path)
    say(f"wrote {len(written)} golden files to {args.output}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("goldens", help="write tokenizer and post-processing golden vectors for the app tests")
    parser.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="local save_pretrained dir or random:<preset> (uncased vocab); omitted: the embedded all-MiniLM-L6-v2",
    )
    parser.add_argument("--from-out", type=Path, default=None, metavar="OUT", help="use OUT/tokenizer instead")
    parser.add_argument("-o", "--output", type=Path, required=True, help="directory for the golden files")
    parser.add_argument(
        "--cased-test-vocab",
        action="store_true",
        help="also write goldens of a small cased WordPiece vocabulary trained offline (see docs/apps.md)",
    )
    parser.add_argument("--buckets", type=int_list, default=None, help="sequence buckets (default 32,64,128)")
    parser.set_defaults(func=_run)
