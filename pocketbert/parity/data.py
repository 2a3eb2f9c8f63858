"""Parity inputs: a built-in varied text set plus user texts, tokenized into the feeds every runner receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.tasks import INPUT_NAMES

_LONG = (
    "Mobile inference of transformer encoders is limited by memory bandwidth more than by arithmetic, so the "
    "distilled student keeps six layers, shares the vocabulary of its teacher, and is quantized to eight bits "
    "before it ships; every artifact is compared with the PyTorch model on the same texts, including this long "
    "paragraph, which is longer than the largest sequence bucket and must therefore be truncated identically by "
    "the Python tokenizer and by the tokenizers inside the Android and iOS sample applications, or the parity "
    "numbers would compare different inputs and prove nothing at all about the exported graphs themselves."
)

BUILTIN_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Hi!",
    "A man is playing a guitar on the street corner.",
    "Stocks fell sharply on Monday after the quarterly report missed expectations.",
    "I absolutely loved this movie; the acting was superb and the ending made me cry.",
    "Worst purchase ever. It broke after two days and support never answered.",
    "Where is the nearest train station?",
    "Héllo wörld — ça va? Ünïcödé àccents, naïve café, São Paulo, Zürich.",
    "我喜欢机器学习和自然语言处理。",
    "東京は日本の首都です。",
    "I love pizza 🍕 and tacos 🌮!!! 😀👍",
    "Wait... what?! (really) [sure] {ok} <tag> #hashtag @user $100 50% a&b x*y=z",
    "The price rose from $3.50 to $4.75 on 2024-03-15, a 35.7% increase.",
    "antidisestablishmentarianism supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "e-mail: someone@example.com, url: https://example.org/path?q=1&x=2",
    "Ceci n'est pas une pipe. Das ist nicht gut. Esto es una prueba.",
    "Quantum computers use qubits, which can be in superpositions of states.",
    "The patient was prescribed 20mg of atorvastatin daily for hyperlipidemia.",
    "To be, or not to be: that is the question.",
    "SELECT name FROM users WHERE id = 42;",
    'She said "yes" — then changed her mind; he didn\'t.',
    "tab\tseparated\tvalues and a zero\u200bwidth space",
    "",
    "Barack Obama was born in Honolulu, Hawaii, and served as the 44th President of the United States.",
    "The Eiffel Tower is located in Paris and was completed in 1889.",
    "Apple Inc. announced a new iPhone at its headquarters in Cupertino, California.",
    "What is the capital of Australia? Canberra is the capital, not Sydney.",
    "The meeting has been moved to Thursday at 3 pm in room 204.",
    "I'm not sure this is what I ordered, but it works fine.",
    "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen.",
    _LONG,
    (_LONG + " ") * 3,
)


def read_text_file(path: Path, what: str = "text file") -> list[str]:
    """Non-empty lines of a UTF-8 text file (one text per line), or a one-line error saying what is wrong."""
    if not path.is_file():
        raise PocketbertError(f"{what} {path} does not exist: pass a UTF-8 file with one text per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PocketbertError(f"{what} {path} is not readable UTF-8 text ({type(exc).__name__})") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise PocketbertError(f"{what} {path} has no texts: put one text per line")
    return texts


def build_feeds(tokenizer: Any, texts: list[str], max_length: int, batch_size: int = 4) -> list[dict[str, np.ndarray]]:
    """Feeds for every runner: each text alone (no padding), then padded batches of ``batch_size`` texts.

    Every feed holds ``input_ids`` and ``attention_mask`` as int64 arrays of shape ``(B, S)``, truncated at
    ``max_length`` tokens; runners cast to their own dtypes.
    """
    feeds = []
    for text in texts:
        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        feeds.append({name: enc[name].astype(np.int64) for name in INPUT_NAMES})
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        chunk = texts[start : start + batch_size]
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding="longest", return_tensors="np")
        feeds.append({name: enc[name].astype(np.int64) for name in INPUT_NAMES})
    return feeds
