"""Distillation data: texts (and optional labels) from a file, a held-out split, tokenization and batching.

Formats, chosen by the file's suffix:

* anything but the suffixes below: plain UTF-8 text, one example per non-empty line;
* ``.jsonl`` (or ``.json`` holding one object per line or a list of objects): fields by name;
* ``.csv`` / ``.tsv``: a header row, fields by column name.

Unlabelled data is enough: the teacher's outputs are the targets. Reading is split in two so that format errors
(missing or empty file, a line that is not JSON) surface before the teacher loads, and field errors (missing
field, a label outside the head) right after, both before any tokenization or training.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pocketbert.errors import PocketbertError
from pocketbert.tasks import Task

IGNORE_INDEX = -100  # label of positions and examples without a label (PyTorch's cross-entropy default)

Row = tuple[int, dict[str, Any]]  # (line or row number, fields)


@dataclass
class Example:
    """One example: ``text`` (the question, for QA), ``pair`` (the QA context) and a label id, a list of word
    label ids (token classification) or ``None``."""

    text: str
    pair: str | None = None
    label: int | list[int] | None = None


@dataclass
class Encoded:
    """A tokenized example: ``input_ids`` (S,) and ``labels``: an id, ``S`` token ids (``IGNORE_INDEX`` where
    unlabelled) or ``None``."""

    input_ids: list[int]
    labels: int | list[int] | None = None


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hex), recorded so that ``--resume`` refuses changed data."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    return "text"


def read_rows(path: Path, what: str = "data file") -> tuple[str, list[Row]]:
    """The rows of a data file as ``(format, [(line, fields)])``; plain text rows have the one field ``text``.

    Raises:
        PocketbertError: the file is missing, unreadable, not UTF-8, empty, or a JSON line is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise PocketbertError(f"{what} {path} does not exist")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PocketbertError(f"{what} {path} is not readable UTF-8 text ({type(exc).__name__})") from None
    if not content.strip():
        raise PocketbertError(f"{what} {path} is empty: put one example per line")
    kind = _kind(path)
    rows: list[Row] = []
    if kind == "text":
        rows = [(n, {"text": line.strip()}) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    elif kind == "jsonl":
        if content.lstrip().startswith("["):
            try:
                items = json.loads(content)
            except json.JSONDecodeError as exc:
                raise PocketbertError(f"{what} {path} is not valid JSON: {exc}") from None
            numbered = list(enumerate(items, 1))
        else:
            numbered = []
            for n, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    numbered.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise PocketbertError(f"{what} {path} line {n} is not JSON ({exc.msg})") from None
        for n, item in numbered:
            if not isinstance(item, dict):
                raise PocketbertError(f"{what} {path} line {n} is not a JSON object with named fields")
            rows.append((n, item))
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            reader = csv.DictReader(content.splitlines(), delimiter=delimiter)
            rows = [(n, dict(row)) for n, row in enumerate(reader, 2) if any((v or "").strip() for v in row.values())]
        except csv.Error as exc:
            raise PocketbertError(f"{what} {path} is not valid CSV ({exc})") from None
    if not rows:
        raise PocketbertError(f"{what} {path} has no examples")
    return kind, rows


def _text(row: dict[str, Any], name: str, n: int, where: str) -> str:
    if name not in row:
        fields = ", ".join(map(str, row)) or "none"
        raise PocketbertError(f"{where} line {n} has no {name!r} field (fields: {fields}); pass --text-field etc.")
    value = row[name]
    if not isinstance(value, str):
        raise PocketbertError(f"{where} line {n}: field {name!r} must be a string, got {type(value).__name__}")
    return value.strip()


def _label_id(value: Any, labels: list[str], n: int, where: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.strip() not in labels:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PocketbertError(f"{where} line {n}: label {value!r} is not a label name or id")
    if isinstance(value, int):
        if not 0 <= value < len(labels):
            raise PocketbertError(
                f"{where} line {n}: label {value} is outside the teacher's head of {len(labels)} labels "
                f"(ids 0..{len(labels) - 1}: {', '.join(labels)})"
            )
        return value
    if value not in labels:
        raise PocketbertError(
            f"{where} line {n}: label {value!r} is not one of the teacher's labels ({', '.join(labels)})"
        )
    return labels.index(value)


def examples_from_rows(
    rows: list[Row],
    task: Task,
    labels: list[str],
    *,
    text_field: str = "text",
    label_field: str | None = None,
    question_field: str = "question",
    context_field: str = "context",
    where: str = "data file",
) -> list[Example]:
    """Examples of ``task`` from :func:`read_rows` rows, labels mapped to the teacher head's ids.

    Args:
        labels: the teacher's label names in id order (empty for feature extraction and QA: labels are ignored).
        label_field: ``None``: ``label`` where present; a given name must occur in at least one row.

    Raises:
        PocketbertError: a missing field, a label outside the head, or word labels not matching the words.
    """
    name = label_field or "label"
    uses_labels = task in (Task.SEQUENCE_CLASSIFICATION, Task.TOKEN_CLASSIFICATION)
    if label_field and uses_labels and not any(label_field in row for _, row in rows):
        raise PocketbertError(f"{where} has no {label_field!r} field in any row (--label-field)")
    examples = []
    for n, row in rows:
        if task is Task.QUESTION_ANSWERING:
            question, context = _text(row, question_field, n, where), _text(row, context_field, n, where)
            if question and context:
                examples.append(Example(question, context))
            continue
        text = _text(row, text_field, n, where)
        if not text:
            continue
        value = row.get(name) if uses_labels else None
        if value is None or value == "":
            examples.append(Example(text))
        elif task is Task.SEQUENCE_CLASSIFICATION:
            examples.append(Example(text, label=_label_id(value, labels, n, where)))
        else:
            words = text.split()
            items = value.split() if isinstance(value, str) else value
            if not isinstance(items, list) or len(items) != len(words):
                got = len(items) if isinstance(items, list) else type(items).__name__
                raise PocketbertError(
                    f"{where} line {n}: token labels need one label per whitespace-separated word "
                    f"({len(words)} words, got {got})"
                )
            examples.append(Example(text, label=[_label_id(v, labels, n, where) for v in items]))
    if not examples:
        raise PocketbertError(f"{where} has no non-empty texts")
    return examples


def split_examples(
    examples: list[Example], held_out: list[Example] | None, fraction: float, max_eval: int, seed: int
) -> tuple[list[Example], list[Example]]:
    """``(train, eval)``: ``held_out`` (at most ``max_eval``) when given, else a seeded random ``fraction`` of
    ``examples`` (at least 1, at most ``max_eval``).

    Raises:
        PocketbertError: fewer than 2 examples to split.
    """
    rng = random.Random(seed)
    if held_out is not None:
        chosen = list(held_out)
        rng.shuffle(chosen)
        return list(examples), chosen[:max_eval]
    if len(examples) < 2:
        raise PocketbertError(
            f"the data has {len(examples)} example; distillation needs at least 2 (one is held out) or --eval-data"
        )
    order = list(range(len(examples)))
    rng.shuffle(order)
    count = min(max(1, round(len(examples) * fraction)), max_eval, len(examples) - 1)
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in order[:count]]


def encode(examples: list[Example], tokenizer: Any, task: Task, max_length: int) -> list[Encoded]:
    """Tokenize ``examples`` (truncated at ``max_length`` tokens, special tokens added, no padding).

    Token-classification texts are split into words on whitespace (as BERT's tokenizer does anyway) and a word's
    label goes to its first sub-token; the other sub-tokens and the special tokens get ``IGNORE_INDEX``.
    """
    out: list[Encoded] = []
    for example in examples:
        if task is Task.QUESTION_ANSWERING:
            enc = tokenizer(example.text, example.pair, truncation="longest_first", max_length=max_length)
            out.append(Encoded(list(enc["input_ids"])))
        elif task is Task.TOKEN_CLASSIFICATION:
            enc = tokenizer(example.text.split(), is_split_into_words=True, truncation=True, max_length=max_length)
            labels = None
            if isinstance(example.label, list):
                labels, previous = [], None
                for word in enc.word_ids():
                    labels.append(example.label[word] if word is not None and word != previous else IGNORE_INDEX)
                    previous = word
            out.append(Encoded(list(enc["input_ids"]), labels))
        else:
            enc = tokenizer(example.text, truncation=True, max_length=max_length)
            out.append(Encoded(list(enc["input_ids"]), example.label))
    return out


def collate(batch: list[Encoded], pad_id: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Pad to the longest example of the batch (dynamic padding).

    Returns ``input_ids`` and ``attention_mask`` (B, S) int64, and ``labels``: (B,) for sequence labels,
    (B, S) for token labels, ``IGNORE_INDEX`` where there is none (absent when no example of the batch has one).
    """
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[i, : len(e.input_ids)] = 1
    out = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if any(e.labels is not None for e in batch):
        if any(isinstance(e.labels, list) for e in batch):
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
            for i, e in enumerate(batch):
                if isinstance(e.labels, list):
                    labels[i, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
        else:
            labels = torch.tensor([IGNORE_INDEX if e.labels is None else e.labels for e in batch], dtype=torch.long)
        out["labels"] = labels.to(device)
    return out


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
    """The batches of one epoch as lists of example indices, a function of ``(seed, epoch)`` only, so a resumed
    run sees the same order.

    With ``group_by_length``, a shuffled epoch is cut into chunks of 50 batches, each chunk sorted by length
    (less padding) and the batches shuffled again.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if group_by_length:
        chunk = batch_size * 50
        chunks = [sorted(order[c : c + chunk], key=lambda i: -lengths[i]) for c in range(0, len(order), chunk)]
        order = [i for part in chunks for i in part]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
