"""A model's tokenizer must be the one it was trained with: present, as large as the embedding table, and able to
read ordinary text.

transformers 5 builds an empty ``BertTokenizer`` (five special tokens) for a directory saved with
``model.save_pretrained`` alone; every word then becomes ``[UNK]``, and parity, fed the same ids on both sides,
cannot notice. These checks refuse such a tokenizer at load time with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError

# a directory holds a usable WordPiece tokenizer when it has one of these
TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "vocab.txt")
MAX_UNKNOWN_FRACTION = 0.5  # of the parity texts' word pieces


def require_tokenizer_files(model_dir: Path) -> None:
    """Refuse a model directory without tokenizer files (``tokenizer.json`` or ``vocab.txt``)."""
    if not any((Path(model_dir) / name).is_file() for name in TOKENIZER_FILES):
        raise PocketbertError(
            f"{model_dir} has no tokenizer files ({' or '.join(TOKENIZER_FILES)}): save them with "
            f"tokenizer.save_pretrained('{model_dir}'), or pass --tokenizer with the hub id or directory of the "
            "model's tokenizer"
        )


def load_tokenizer(location: str) -> Any:
    """The tokenizer at ``location`` (a directory with tokenizer files, or a hub id), with a one-line error."""
    from transformers import AutoTokenizer

    path = Path(location).expanduser()
    local = path.is_dir()
    if local:
        require_tokenizer_files(path)
    elif location.startswith((".", "/", "~")) or path.exists():
        raise PocketbertError(f"tokenizer {location} is not a directory; pass a tokenizer directory or a hub id")
    try:
        return AutoTokenizer.from_pretrained(str(path) if local else location, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise PocketbertError(f"cannot load tokenizer {location!r}: {str(exc).splitlines()[0]}") from exc


def unknown_fraction(tokenizer: Any, texts: list[str]) -> float:
    """Share of the word pieces of ``texts`` (special tokens other than the unknown token excluded) that are the
    unknown token; 1.0 when the texts yield no pieces at all."""
    unk = tokenizer.unk_token_id
    special = set(tokenizer.all_special_ids) - {unk}
    pieces = [i for text in texts for i in tokenizer(text)["input_ids"] if i not in special]
    return sum(i == unk for i in pieces) / len(pieces) if pieces else 1.0


def check_vocabulary(tokenizer: Any, model: Any, where: str) -> None:
    """Refuse a tokenizer whose vocabulary does not match the model's embedding table (size in tokens), or that
    maps the built-in parity texts mostly to the unknown token. ``where`` names the tokenizer's source."""
    from pocketbert.parity.data import BUILTIN_TEXTS

    rows = int(model.get_input_embeddings().num_embeddings)
    size = len(tokenizer)
    fix = "save the model's own tokenizer with tokenizer.save_pretrained(DIR) or pass --tokenizer"
    if size != rows:
        relation = "smaller" if size < rows else "larger"
        raise PocketbertError(
            f"the tokenizer of {where} has {size} tokens, {relation} than the model's embedding table ({rows} rows): "
            f"it is not the model's tokenizer; {fix}"
        )
    share = unknown_fraction(tokenizer, list(BUILTIN_TEXTS))
    if share > MAX_UNKNOWN_FRACTION:
        raise PocketbertError(
            f"the tokenizer of {where} maps {share:.0%} of ordinary text to {tokenizer.unk_token}: it is not the "
            f"model's tokenizer; {fix}"
        )
