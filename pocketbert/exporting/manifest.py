"""The manifest: everything parity, the bench, the bundler and the sample apps need to know about an output dir.

``OUT/manifest.json`` is versioned (``schema_version``); its JSON Schema is
``pocketbert/schemas/manifest.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pocketbert import __version__
from pocketbert.core.artifact import MANIFEST_VERSION, Artifact, ExportSettings
from pocketbert.core.integrity import digests
from pocketbert.exporting.options import resolved
from pocketbert.loading import LoadedModel

TOKENIZER_DIR = "tokenizer"
VOCAB_FILE = "vocab.txt"


def tokenizer_settings(tok: Any) -> dict[str, Any]:
    """What an app tokenizer needs, read from the fast tokenizer's normalizer and WordPiece model."""
    spec = json.loads(tok.backend_tokenizer.to_str())
    normalizer = spec.get("normalizer") or {}
    model = spec.get("model") or {}
    return {
        "lowercase": bool(normalizer.get("lowercase", False)),
        "strip_accents": normalizer.get("strip_accents"),
        "tokenize_chinese_chars": bool(normalizer.get("handle_chinese_chars", True)),
        "clean_text": bool(normalizer.get("clean_text", True)),
        "continuing_subword_prefix": model.get("continuing_subword_prefix", "##"),
        "max_input_chars_per_word": int(model.get("max_input_chars_per_word", 100)),
        "cls_token_id": tok.cls_token_id,
        "sep_token_id": tok.sep_token_id,
        "pad_token_id": tok.pad_token_id,
        "unk_token_id": tok.unk_token_id,
        "unk_token": tok.unk_token,
    }


def write_vocab(tok: Any, path: Path) -> None:
    """The vocabulary as a plain ``vocab.txt`` (one token per line, in id order) for the apps."""
    vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
    path.write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")


def write_tokenizer(loaded: LoadedModel, out_dir: Path) -> dict[str, Any]:
    """Save the tokenizer (HF files plus a plain ``vocab.txt`` for the apps) and describe its settings and the
    sha256 of every file written."""
    tok = loaded.tokenizer
    target = out_dir / TOKENIZER_DIR
    target.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(target))
    write_vocab(tok, target / VOCAB_FILE)
    files = sorted(f"{TOKENIZER_DIR}/{p.name}" for p in target.iterdir() if p.is_file())
    return {
        "type": "wordpiece",
        "files": files,
        "sha256": digests(out_dir, files),
        "vocab": f"{TOKENIZER_DIR}/{VOCAB_FILE}",
        "vocab_size": len(tok.get_vocab()),
        **tokenizer_settings(tok),
    }


def _resolved(source: str | None) -> str | None:
    """A local directory as an absolute path; hub ids and presets as given."""
    if source and Path(source).expanduser().is_dir():
        return str(Path(source).expanduser().resolve())
    return source


def model_section(loaded: LoadedModel, seed: int) -> dict[str, Any]:
    """How to rebuild the reference model, and what the apps show about it."""
    return {
        "source": _resolved(loaded.source) or "",
        "tokenizer": _resolved(loaded.tokenizer_source),
        "origin": loaded.origin,
        "architecture": loaded.architecture,
        "task": loaded.task.value,
        "labels": loaded.labels,
        "num_labels": len(loaded.labels) or None,
        "seed": seed,
        "max_positions": loaded.max_positions,
        "hidden_size": loaded.hidden_size,
    }


def build_manifest(
    loaded: LoadedModel, settings: ExportSettings, tokenizer: dict[str, Any], artifacts: list[Artifact], seed: int
) -> dict[str, Any]:
    """A complete manifest for ``artifacts`` (already finalised with sha256 and sizes)."""
    return {
        "schema_version": MANIFEST_VERSION,
        "pocketbert_version": __version__,
        "model": model_section(loaded, seed),
        "max_length": settings.max_length,
        "sequence_buckets": settings.sequence_buckets,
        "settings": resolved(settings),
        "tokenizer": tokenizer,
        "artifacts": [a.to_dict() for a in artifacts],
    }


def read_tokenizer(out_dir: Path, purpose: str) -> Any:
    """The tokenizer saved beside the artifacts (``OUT/tokenizer``), offline; ``purpose`` completes the error
    "… is missing: re-run 'pocketbert export' (<purpose>)"."""
    from transformers import AutoTokenizer

    from pocketbert.errors import PocketbertError

    path = Path(out_dir) / TOKENIZER_DIR
    if not path.is_dir():
        raise PocketbertError(f"{path} is missing: re-run 'pocketbert export' ({purpose})")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
