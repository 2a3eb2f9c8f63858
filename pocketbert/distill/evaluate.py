"""Held-out evaluation: how closely the student agrees with the teacher, with pocketbert's parity metrics.

The teacher runs once on the held-out split and its outputs are kept; each evaluation runs the student on the same
padded batches and compares the deployed outputs (:mod:`pocketbert.tasks`) with
:func:`pocketbert.parity.metrics.compare_outputs`: ``rank_spearman`` (feature extraction: Spearman of all pairwise
embedding cosines), ``top1_agreement``, ``token_agreement``, ``span_agreement``, and every output's worst cosine.
It also reports the distillation loss on the split and, where examples have labels, the accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pocketbert.distill.config import DistillConfig
from pocketbert.distill.data import IGNORE_INDEX, Encoded, collate
from pocketbert.distill.losses import distill_loss, needs_hidden_states
from pocketbert.parity.metrics import compare_outputs
from pocketbert.tasks import Task
from pocketbert.wrapper import mean_pool_normalize

PRIMARY_METRIC: dict[Task, str] = {
    Task.FEATURE_EXTRACTION: "rank_spearman",
    Task.SEQUENCE_CLASSIFICATION: "top1_agreement",
    Task.TOKEN_CLASSIFICATION: "token_agreement",
    Task.QUESTION_ANSWERING: "span_agreement",
}
WORST_COSINE: dict[Task, str] = {
    Task.FEATURE_EXTRACTION: "embedding.cosine_min",
    Task.SEQUENCE_CLASSIFICATION: "logits.cosine_min",
    Task.TOKEN_CLASSIFICATION: "logits.cosine_min",
    Task.QUESTION_ANSWERING: "start_logits.cosine_min",
}
EVAL_BATCH = 32


def named_outputs(task: Task, out: Any, attention_mask: torch.Tensor) -> dict[str, np.ndarray]:
    """The deployed outputs of ``task`` (names and shapes of :func:`pocketbert.tasks.output_specs`) from a Hugging
    Face output, as :func:`pocketbert.wrapper.reference_outputs` computes them, in float32 NumPy."""
    if task is Task.FEATURE_EXTRACTION:
        hidden = out.last_hidden_state
        named = {"last_hidden_state": hidden, "embedding": mean_pool_normalize(hidden, attention_mask.float())}
    elif task is Task.QUESTION_ANSWERING:
        named = {"start_logits": out.start_logits, "end_logits": out.end_logits}
    else:
        named = {"logits": out.logits}
    return {k: v.detach().float().cpu().numpy() for k, v in named.items()}


def forward(model: Any, batch: dict[str, torch.Tensor], hidden: bool) -> Any:
    """The Hugging Face forward on ``input_ids`` / ``attention_mask`` only (one segment, as deployed)."""
    return model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=hidden or None
    )


def _accuracy_counts(task: Task, logits: torch.Tensor, labels: torch.Tensor | None) -> tuple[int, int]:
    if labels is None or task not in (Task.SEQUENCE_CLASSIFICATION, Task.TOKEN_CLASSIFICATION):
        return 0, 0
    keep = labels != IGNORE_INDEX
    right = (logits.argmax(dim=-1) == labels) & keep
    return int(right.sum()), int(keep.sum())


@dataclass
class HeldOut:
    """The held-out split ready to evaluate: padded batches, the teacher's outputs on them, its accuracy."""

    batches: list[dict[str, torch.Tensor]]
    feeds: list[dict[str, np.ndarray]]
    teacher_raw: list[Any]
    teacher_named: list[dict[str, np.ndarray]]
    teacher_accuracy: float | None = None
    examples: int = 0
    tokens: int = 0


def prepare_held_out(
    teacher: Any, encoded: list[Encoded], task: Task, config: DistillConfig, pad_id: int, device: str
) -> HeldOut:
    """Batch the held-out examples (sorted by length, :data:`EVAL_BATCH` per batch) and run the teacher once."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    groups = [order[s : s + EVAL_BATCH] for s in range(0, len(order), EVAL_BATCH)]
    batches = [collate([encoded[i] for i in group], pad_id, device) for group in groups]
    hidden = needs_hidden_states(task, config)
    raw, named, feeds = [], [], []
    right = total = 0
    with torch.inference_mode():
        for batch in batches:
            out = forward(teacher, batch, hidden)
            raw.append(out)
            named.append(named_outputs(task, out, batch["attention_mask"]))
            feeds.append({k: batch[k].cpu().numpy() for k in ("input_ids", "attention_mask")})
            if task is not Task.FEATURE_EXTRACTION and task is not Task.QUESTION_ANSWERING:
                r, t = _accuracy_counts(task, out.logits, batch.get("labels"))
                right, total = right + r, total + t
    return HeldOut(
        batches=batches,
        feeds=feeds,
        teacher_raw=raw,
        teacher_named=named,
        teacher_accuracy=right / total if total else None,
        examples=len(encoded),
        tokens=sum(len(e.input_ids) for e in encoded),
    )


def evaluate(
    student: Any,
    held_out: HeldOut,
    task: Task,
    config: DistillConfig,
    layer_map: list[int],
    parts: dict[str, float],
) -> dict[str, float]:
    """The student's metrics on the held-out split (student left in eval mode; the caller restores train mode).

    Returns ``compare_outputs`` metrics plus ``eval_loss`` (the weighted distillation loss, averaged over batches)
    and ``accuracy`` when labelled examples exist.
    """
    student.eval()
    hidden = needs_hidden_states(task, config)
    got, losses = [], []
    right = total = 0
    with torch.inference_mode():
        for batch, teacher_out in zip(held_out.batches, held_out.teacher_raw):
            out = forward(student, batch, hidden)
            got.append(named_outputs(task, out, batch["attention_mask"]))
            loss, _ = distill_loss(
                task, out, teacher_out, batch["attention_mask"], batch.get("labels"), config, layer_map, parts
            )
            losses.append(float(loss))
            if task in (Task.SEQUENCE_CLASSIFICATION, Task.TOKEN_CLASSIFICATION):
                r, t = _accuracy_counts(task, out.logits, batch.get("labels"))
                right, total = right + r, total + t
    metrics = compare_outputs(task, held_out.feeds, held_out.teacher_named, got)
    metrics["eval_loss"] = float(np.mean(losses))
    if total:
        metrics["accuracy"] = right / total
    return metrics


def selection_score(task: Task, metrics: dict[str, float]) -> float:
    """The number the best student is chosen by (higher is better): the task's agreement metric; for feature
    extraction the mean of ``rank_spearman`` and the worst embedding cosine, since a student whose embeddings
    rank pairs like the teacher's but point elsewhere cannot replace it."""
    value = metrics.get(PRIMARY_METRIC[task], float("-inf"))
    if task is Task.FEATURE_EXTRACTION:
        value = (value + metrics.get(WORST_COSINE[task], float("-inf"))) / 2
    return float(value)


def better(task: Task, candidate: dict[str, float], best: dict[str, float] | None) -> bool:
    """Whether ``candidate`` beats ``best``: a higher :func:`selection_score`, then a lower ``eval_loss``."""
    if best is None:
        return True
    a, b = selection_score(task, candidate), selection_score(task, best)
    if a != b:
        return a > b
    return candidate["eval_loss"] < best["eval_loss"]
