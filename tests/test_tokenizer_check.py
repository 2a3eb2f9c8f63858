"""A model without its own tokenizer is refused at load, unless a tokenizer is named explicitly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pocketbert.cli import main
from pocketbert.errors import PocketbertError
from pocketbert.loading import load_model


@pytest.fixture(scope="module")
def bare_model(tiny_models, tmp_path_factory) -> Path:
    """The tiny classifier saved with ``model.save_pretrained`` alone (no tokenizer files)."""
    src = tiny_models("distilbert", "sequence-classification")
    bare = tmp_path_factory.mktemp("bare") / "model"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(src / name, bare / name)
    return bare


def _with_vocab(src: Path, dst: Path, tokens: list[str]) -> Path:
    """A copy of model ``src`` whose tokenizer is a WordPiece vocabulary of ``tokens``."""
    from transformers import BertTokenizer

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("tokenizer*", "vocab.txt", "special_tokens_map.json"))
    vocab = dst / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in tokens))
    BertTokenizer(vocab=str(vocab), do_lower_case=True).save_pretrained(str(dst))
    return dst


def test_a_checkpoint_saved_without_its_tokenizer_is_refused(bare_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(bare_model), "--precision", "fp32", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no tokenizer files (tokenizer.json or vocab.txt)" in err[0]
    assert "tokenizer.save_pretrained" in err[0] and "--tokenizer" in err[0]
    assert not out.exists()


def test_an_explicit_tokenizer_is_used_and_parity_reloads_it(bare_model, tiny_models, tmp_path):
    out = tmp_path / "out"
    tokenizer = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", str(bare_model), "--tokenizer", tokenizer, "--precision", "fp32", "-o", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["tokenizer"] == str(Path(tokenizer).resolve())
    assert manifest["tokenizer"]["vocab_size"] == 30522
    assert main(["parity", str(out)]) == 0


def test_a_vocabulary_smaller_than_the_embedding_table_is_refused(tiny_models, tmp_path):
    src = tiny_models("bert", "feature-extraction")
    small = _with_vocab(src, tmp_path / "m", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a"])
    with pytest.raises(
        PocketbertError, match="has 7 tokens, smaller than the model's embedding table \\(30522 rows\\)"
    ):
        load_model(str(small))


def test_a_vocabulary_that_reads_text_as_unknown_is_refused(tiny_models, tmp_path):
    src = tiny_models("bert", "feature-extraction")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    junk = _with_vocab(src, tmp_path / "m", specials + [f"zz{i}" for i in range(30522 - len(specials))])
    with pytest.raises(PocketbertError, match=r"maps \d+% of ordinary text to \[UNK\]") as info:
        load_model(str(junk))
    assert "\n" not in str(info.value)
