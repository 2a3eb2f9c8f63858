"""Benchmark feeds: real text, tokenized by the student's tokenizer, of exactly the asked token lengths.

Random ids would exercise the same matmuls, but real text keeps the embedding lookups and any data-dependent path
honest and lets the agreement check read the outputs. The built-in parity texts are joined and repeated until they
are long enough, then truncated to ``seq`` tokens (``[CLS] … [SEP]`` included). With ``batch > 1`` every odd row
is shorter (3/4 of ``seq``) and padded, so the attention masks carry padding as in a real batched app.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.parity.data import BUILTIN_TEXTS
from pocketbert.tasks import INPUT_NAMES

Feed = dict[str, np.ndarray]


def _long_text(tokenizer: Any, tokens: int, offset: int) -> str:
    """Built-in texts joined (starting at text ``offset``) and repeated until they exceed ``tokens`` tokens."""
    texts = [t for t in BUILTIN_TEXTS if t.strip()]
    texts = texts[offset % len(texts) :] + texts[: offset % len(texts)]
    text = " ".join(texts)
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens:
        text = f"{text} {text}"
    return text


def row_lengths(seq: int, batch: int) -> list[int]:
    """Real tokens per row: ``seq`` on even rows, ``max(2, 3*seq//4)`` on odd rows (padded to ``seq``)."""
    return [seq if b % 2 == 0 else max(2, (3 * seq) // 4) for b in range(batch)]


def make_feed(tokenizer: Any, seq: int, batch: int = 1) -> Feed:
    """A feed of ``batch`` rows of ``seq`` tokens: ``input_ids`` and ``attention_mask``, int64 ``(batch, seq)``."""
    if seq < 2:
        raise PocketbertError(f"sequence length must be at least 2 ([CLS] and [SEP]), got {seq}")
    if batch < 1:
        raise PocketbertError(f"batch must be at least 1, got {batch}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full((batch, seq), pad, dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    for b, length in enumerate(row_lengths(seq, batch)):
        enc = tokenizer(_long_text(tokenizer, length, offset=b), truncation=True, max_length=length)
        row = np.asarray(enc["input_ids"], dtype=np.int64)
        if row.shape[0] != length:
            raise PocketbertError(f"tokenizer produced {row.shape[0]} tokens where {length} were asked")
        ids[b, :length] = row
        mask[b, :length] = 1
    return dict(zip(INPUT_NAMES, (ids, mask)))


def make_feeds(tokenizer: Any, seqs: list[int], batch: int = 1) -> dict[int, Feed]:
    """One feed per sequence length (see :func:`make_feed`)."""
    return {seq: make_feed(tokenizer, seq, batch) for seq in seqs}
