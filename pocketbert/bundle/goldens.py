"""Golden vectors for the sample apps: what the Python stack computes, for the Kotlin and Swift cores to reproduce.

Two kinds of file, both written fresh by ``pocketbert goldens`` (never committed):

* ``tokenizer-<name>.json``: a tokenizer's settings, its ``vocab.txt`` (beside the file) and cases
  ``{text, text_pair?, max_length, pad_to, input_ids, attention_mask, offsets}`` encoded by the Hugging Face fast
  tokenizer. ``pad_to`` is :func:`~pocketbert.core.buckets.choose_bucket` of the real length over ``buckets``;
  ``offsets`` are ``[start, end)`` in **UTF-16 code units** of the text the token came from (the question or the
  context of a pair), ``[0, 0]`` for special tokens and padding — the unit Kotlin and Swift strings index by.
* ``charclasses.json``: the tokenizer's character classes as code-point ranges
  (:mod:`pocketbert.bundle.charclasses`), for the app tests to check every code point.
* ``postprocess.json``: softmax, mean pooling + L2 norm, QA span decoding and bucket choice, computed by the same
  Python functions parity uses (:func:`~pocketbert.parity.metrics.best_span`,
  :func:`~pocketbert.wrapper.mean_pool_normalize`, :func:`~pocketbert.core.buckets.choose_bucket`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.bundle.charclasses import bert_char_classes as classes
from pocketbert.core.artifact import write_json_atomic
from pocketbert.core.buckets import choose_bucket
from pocketbert.errors import PocketbertError
from pocketbert.exporting.manifest import tokenizer_settings, write_vocab
from pocketbert.parity.data import BUILTIN_TEXTS
from pocketbert.parity.metrics import MAX_ANSWER_TOKENS, best_span

GOLDENS_KIND = "pocketbert-goldens"
GOLDENS_VERSION = 1
DEFAULT_BUCKETS: tuple[int, ...] = (32, 64, 128)
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Texts that break app tokenizers: every branch of BERT normalisation, pre-tokenisation and WordPiece.
EDGE_TEXTS: tuple[str, ...] = (
    "",
    "   ",
    "a",
    "Hello, World! HELLO world hello",
    "Crème brûlée à la française, déjà vu, façade, Ångström, Øresund, Łódź",
    "Cafe\u0301 with a combining accent, and \u00e9 precomposed",
    "İstanbul ΣΊΣΥΦΟΣ Straße ǅemal ﬁnance Ⅻ ＡＢＣ",
    "Привет, мир! Κόσμε. שלום עולם. مَرْحَبًا بالعالم",
    "नमस्ते दुनिया, สวัสดีชาวโลก, 안녕하세요 세계",
    "中文字符和English混合，日本語のテキスト、한국어",
    "CJK extensions: \U00020000 \U0002a6df \U0002a700 \U0002b740 \U0002b820 \U0002b920 \uf900 \U0002f800 \u3400",
    "emoji 😀👍🏽 👨‍👩‍👧 🏳️‍🌈 ❤️ 🇫🇷 and a pizza🍕slice",
    "control\x00chars\x07here\x1b and\x0bvertical\x0cfeed\x7fdel \x85next \ufffdreplacement",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom \u00adsoft hyphen",
    "spaces\u00a0nbsp\u2003em\u3000ideographic\u2028line\u2029para\ttab\nnewline\r\n",
    "private \ue000 use \U000f0000 and unassigned \u0378 chars",
    "punctuation!!! ¿¡ «quotes» „low“ — – … · • § ¶ † ‡ ‰ ′ ″ ‹› 【】「」 ＠ ＃",
    "symbols $ ^ ` | ~ + < = > © ® ™ ° ± × ÷ € £ ¥ ₹ ∑ √ ∞ ≠ ≤ ≥",
    "numbers 3.14159 1,000,000 42nd 2024-03-15 0x1F 1e-9 ½ ² ³",
    "x" * 99 + " " + "y" * 100 + " " + "z" * 101,
    "supercalifragilisticexpialidocious" * 4,
    "Ünïcödé" * 20,
    "a" * 250,
    "MiXeD CaSe WoRdS McDonald iPhone eBay YouTube NASA OpenAI",
    "don't won't can't it's O'Reilly rock'n'roll e.g. i.e. U.S.A.",
    "#hashtag @mention https://example.com/a_b-c?d=e&f=g#h user.name+tag@mail.co.uk",
)

QA_PAIRS: tuple[tuple[str, str], ...] = (
    ("Where is the Eiffel Tower?", "The Eiffel Tower is located in Paris and was completed in 1889."),
    ("Quelle est la capitale de la France ?", "Paris est la capitale de la France, au bord de la Seine."),
    ("首都是哪里？", "日本的首都是东京。東京は日本の首都です。"),
    ("What did she say? 😀", 'She said "yes" — then changed her mind; he didn\'t.'),
    ("Who?", BUILTIN_TEXTS[-1]),
)

# Corpus the cased test vocabulary is trained on: mixed case, accents, CJK, punctuation.
_CASED_CORPUS_EXTRA: tuple[str, ...] = (
    "The Quick Brown Fox. THE QUICK BROWN FOX. the quick brown fox.",
    "Paris London Berlin Tokyo München Zürich São Paulo Kraków Reykjavík",
    "Apple iPhone Google Android Microsoft Windows NASA OpenAI McDonald",
    "Crème brûlée, déjà vu, façade, naïve, résumé, Ångström, Øresund, Straße",
    "我喜欢机器学习。東京は日本の首都です。中文字符和English混合",
    "Hello World hello world HELLO WORLD Hello, World!",
)


def _utf16(text: str, index: int) -> int:
    """UTF-16 code units in ``text[:index]`` (Python indexes by code point)."""
    return len(text[:index].encode("utf-16-le")) // 2


def _offsets_utf16(texts: list[str], sequence_ids: list[int | None], offsets: list[tuple[int, int]]) -> list[list[int]]:
    result = []
    for seq, (start, end) in zip(sequence_ids, offsets):
        if seq is None:
            result.append([0, 0])
        else:
            text = texts[seq]
            result.append([_utf16(text, start), _utf16(text, end)])
    return result


def encode_case(
    tokenizer: Any, text: str, max_length: int, buckets: list[int], text_pair: str | None = None
) -> dict[str, Any]:
    """One golden case: the fast tokenizer's encoding of ``text`` (and ``text_pair``), padded to its bucket.

    Single texts are truncated from the end; pairs (QA: question, context) truncate only the context.
    """
    truncation = "only_second" if text_pair is not None else True
    enc = tokenizer(
        text, text_pair, truncation=truncation, max_length=max_length, return_offsets_mapping=True, padding=False
    )
    ids = list(enc["input_ids"])
    texts = [text] if text_pair is None else [text, text_pair]
    offsets = _offsets_utf16(texts, enc.sequence_ids(), enc["offset_mapping"])
    pad_to = choose_bucket(len(ids), buckets)
    padding = pad_to - len(ids)
    case: dict[str, Any] = {"text": text}
    if text_pair is not None:
        case["text_pair"] = text_pair
    case.update(
        {
            "max_length": max_length,
            "pad_to": pad_to,
            "input_ids": ids + [tokenizer.pad_token_id] * padding,
            "attention_mask": [1] * len(ids) + [0] * padding,
            "offsets": offsets + [[0, 0]] * padding,
        }
    )
    return case


def tokenizer_goldens(tokenizer: Any, name: str, buckets: list[int]) -> dict[str, Any]:
    """Every golden case of one tokenizer: built-in and edge texts at the largest bucket and short lengths, pairs."""
    longest = buckets[-1]
    cases = []
    for text in (*BUILTIN_TEXTS, *EDGE_TEXTS):
        cases.append(encode_case(tokenizer, text, longest, buckets))
    for text in (BUILTIN_TEXTS[0], EDGE_TEXTS[4], EDGE_TEXTS[9], BUILTIN_TEXTS[-1]):
        for max_length in (2, 3, 8, 17):
            cases.append(encode_case(tokenizer, text, max_length, buckets))
    for question, context in QA_PAIRS:
        for max_length in (longest, 24):
            cases.append(encode_case(tokenizer, question, max_length, buckets, text_pair=context))
    return {
        "kind": GOLDENS_KIND,
        "version": GOLDENS_VERSION,
        "name": name,
        "tokenizer": tokenizer_settings(tokenizer),
        "vocab": f"vocab-{name}.txt",
        "buckets": list(buckets),
        "cases": cases,
    }


def cased_test_tokenizer(vocab_size: int = 600) -> Any:
    """A small **cased** WordPiece tokenizer trained offline with ``tokenizers``, wrapped as a ``BertTokenizer``.

    No cased BERT vocabulary ships offline, so one is trained on the built-in parity texts plus mixed-case,
    accented and CJK sentences (BERT normalizer with ``lowercase=False, strip_accents=False``, BERT pre-tokenizer,
    special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``). It exists to prove the app tokenizers keep case and accents.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), continuing_subword_prefix="##", show_progress=False
    )
    tok.train_from_iterator([*BUILTIN_TEXTS, *_CASED_CORPUS_EXTRA], trainer=trainer)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
        vocab_file.write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")
        return BertTokenizer(vocab=str(vocab_file), do_lower_case=False, strip_accents=False, model_max_length=512)


def _f32(values: np.ndarray) -> list[Any]:
    """float32 values as JSON numbers that parse back to the identical float32."""
    return np.asarray(values, dtype=np.float32).astype(np.float64).tolist()


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max()
    exp = np.exp(shifted)
    return exp / exp.sum()


def postprocess_goldens(seed: int = 0) -> dict[str, Any]:
    """Post-processing cases computed by the Python functions parity uses, for the app cores to reproduce."""
    import torch

    from pocketbert.wrapper import mean_pool_normalize

    rng = np.random.default_rng(seed)
    softmax = []
    for logits in (
        rng.normal(size=2) * 3,
        rng.normal(size=5) * 10,
        np.array([1000.0, -1000.0, 0.0]),
        np.array([2.5, 2.5, 2.5, 2.5]),
        np.array([-88.0, 88.0]),
    ):
        logits = logits.astype(np.float32)
        softmax.append({"logits": _f32(logits), "probabilities": _softmax(logits).tolist()})

    pooling = []
    for seq, hidden_size, real in ((6, 4, 6), (8, 5, 3), (16, 8, 1), (4, 3, 0)):
        hidden = rng.normal(size=(seq, hidden_size)).astype(np.float32)
        mask = np.array([1.0] * real + [0.0] * (seq - real), dtype=np.float32)
        emb = mean_pool_normalize(torch.from_numpy(hidden)[None], torch.from_numpy(mask)[None])[0].numpy()
        pooling.append(
            {"hidden": [_f32(row) for row in hidden], "mask": mask.astype(int).tolist(), "embedding": _f32(emb)}
        )

    spans = []
    for n in (1, 5, 12, 40, 80):
        start = rng.normal(size=n).astype(np.float32) * 4
        end = rng.normal(size=n).astype(np.float32) * 4
        if n == 80:  # the best pair is further apart than the longest allowed answer
            start[2], end[70] = 50.0, 50.0
        i, j = best_span(start, end)
        case: dict[str, Any] = {"start_logits": _f32(start), "end_logits": _f32(end), "span": [int(i), int(j)]}
        if n >= 12:  # restricted to a window (the context tokens of a QA pair), as the apps decode
            lo, hi = 3, n - 1
            wi, wj = best_span(start[lo:hi], end[lo:hi])
            case["window"] = [lo, hi]
            case["window_span"] = [int(wi) + lo, int(wj) + lo]
        spans.append(case)
    tie = np.zeros(6, dtype=np.float32)
    spans.append({"start_logits": _f32(tie), "end_logits": _f32(tie), "span": [int(v) for v in best_span(tie, tie)]})

    buckets = []
    for bucket_list in ([32, 64, 128], [16], [8, 24, 512]):
        for length in (0, 1, 8, 16, 17, 32, 33, 64, 100, 128, 129, 512, 513):
            try:
                chosen: int | None = choose_bucket(length, bucket_list)
            except PocketbertError:
                chosen = None
            buckets.append({"length": length, "buckets": bucket_list, "bucket": chosen})

    return {
        "kind": GOLDENS_KIND,
        "version": GOLDENS_VERSION,
        "max_answer_tokens": MAX_ANSWER_TOKENS,
        "softmax": softmax,
        "mean_pooling": pooling,
        "spans": spans,
        "buckets": buckets,
    }


def write_goldens(out_dir: Path, tokenizers: dict[str, Any], buckets: list[int] | None = None) -> list[Path]:
    """Write ``tokenizer-<name>.json`` + ``vocab-<name>.txt`` per tokenizer and ``postprocess.json`` into ``out_dir``.

    The files are written into a temporary directory beside ``out_dir`` and moved in at the end, so a failure leaves
    the previous goldens (or nothing) behind.
    """
    buckets = list(buckets or DEFAULT_BUCKETS)
    if buckets != sorted(buckets) or not buckets or buckets[0] < 3:
        raise PocketbertError(f"buckets must be ascending lengths of at least 3 tokens, got {buckets}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, tokenizer in tokenizers.items():
            write_vocab(tokenizer, stage / f"vocab-{name}.txt")
            write_json_atomic(stage / f"tokenizer-{name}.json", tokenizer_goldens(tokenizer, name, buckets))
        write_json_atomic(stage / "postprocess.json", postprocess_goldens())
        write_json_atomic(stage / "charclasses.json", {"kind": GOLDENS_KIND, "version": GOLDENS_VERSION, **classes()})
        out_dir.mkdir(exist_ok=True)
        written = []
        for path in sorted(stage.iterdir()):
            target = out_dir / path.name
            path.replace(target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(stage, ignore_errors=True)
