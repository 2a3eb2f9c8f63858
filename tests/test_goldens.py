"""``pocketbert goldens``: the golden files the app tests consume are complete, consistent and from HF."""

from __future__ import annotations

import json

import numpy as np

from pocketbert.bundle.goldens import EDGE_TEXTS, cased_test_tokenizer, write_goldens
from pocketbert.cli import main
from pocketbert.loading import uncased_tokenizer
from pocketbert.parity.metrics import best_span


def test_cli_writes_uncased_and_cased_goldens(tmp_path, tiny_models, capsys):
    out = tmp_path / "goldens"
    assert main(["goldens", str(tiny_models("bert", "feature-extraction")), "-o", str(out), "--cased-test-vocab"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "charclasses.json",
        "postprocess.json",
        "tokenizer-cased.json",
        "tokenizer-uncased.json",
        "vocab-cased.txt",
        "vocab-uncased.txt",
    ]
    for name in ("uncased", "cased"):
        golden = json.loads((out / f"tokenizer-{name}.json").read_text())
        assert golden["tokenizer"]["lowercase"] is (name == "uncased")
        assert (out / golden["vocab"]).is_file()
        for case in golden["cases"]:
            n = sum(case["attention_mask"])
            assert len(case["input_ids"]) == len(case["offsets"]) == case["pad_to"] >= n
            assert n <= case["max_length"]
            assert case["input_ids"][0] == golden["tokenizer"]["cls_token_id"]


def test_cased_vocabulary_keeps_case_and_accents():
    tok = cased_test_tokenizer()
    assert tok("Hello")["input_ids"] != tok("hello")["input_ids"]
    assert tok("café")["input_ids"] != tok("cafe")["input_ids"]
    assert "[UNK]" in tok.get_vocab() and "[MASK]" in tok.get_vocab()


def test_offsets_are_utf16_and_cover_the_token_text(tmp_path):
    write_goldens(tmp_path / "g", {"uncased": uncased_tokenizer()})
    golden = json.loads((tmp_path / "g" / "tokenizer-uncased.json").read_text())
    by_text = {c["text"]: c for c in golden["cases"] if "text_pair" not in c and c["max_length"] == 128}
    case = by_text["I love pizza 🍕 and tacos 🌮!!! 😀👍"]
    utf16 = "I love pizza 🍕 and tacos 🌮!!! 😀👍".encode("utf-16-le")
    spans = [utf16[2 * s : 2 * e].decode("utf-16-le") for s, e in case["offsets"] if e > s]
    assert spans[:3] == ["I", "love", "pizza"]
    assert "🌮" in spans and "!" in spans  # an emoji is 2 UTF-16 units; the '!' after it is found there
    assert by_text[""]["input_ids"][:2] == [golden["tokenizer"]["cls_token_id"], golden["tokenizer"]["sep_token_id"]]
    assert EDGE_TEXTS[0] in by_text


def test_postprocess_spans_come_from_best_span(tmp_path):
    write_goldens(tmp_path / "g", {"uncased": uncased_tokenizer()})
    golden = json.loads((tmp_path / "g" / "postprocess.json").read_text())
    far = [c for c in golden["spans"] if len(c["start_logits"]) == 80][0]
    start, end = np.array(far["start_logits"], np.float32), np.array(far["end_logits"], np.float32)
    assert tuple(far["span"]) == best_span(start, end)
    assert far["span"][1] - far["span"][0] < 30  # the planted pair 68 tokens apart is not chosen
    assert [c["bucket"] for c in golden["buckets"] if c["length"] == 129 and c["buckets"] == [32, 64, 128]] == [None]


def test_goldens_from_an_output_dir_and_one_line_errors(tmp_path, capsys):
    out = tmp_path / "out"
    uncased_tokenizer().save_pretrained(str(out / "tokenizer"))
    assert main(["goldens", "--from-out", str(out), "-o", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "tokenizer-uncased.json").is_file()
    capsys.readouterr()
    for argv in (
        ["goldens", "--from-out", str(tmp_path / "missing"), "-o", str(tmp_path / "x")],
        ["goldens", str(tmp_path / "no-such-model"), "-o", str(tmp_path / "x")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pocketbert goldens: error:") and "\n" not in err
    assert not (tmp_path / "x").exists()
