"""Agreement of every student runner with the BERT baseline on the same texts (the "retains 97% of BERT" claim).

Only meaningful when the baseline is a real checkpoint with the student's task, labels and vocabulary; otherwise
:func:`agreement_applicable` says why not and nothing is computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pocketbert.parity.metrics import best_span, embedding_spearman
from pocketbert.tasks import Task

RANDOM_NOTE = "agreement not meaningful (random weights)"
METRICS: dict[Task, str] = {
    Task.SEQUENCE_CLASSIFICATION: "top1_agreement",
    Task.TOKEN_CLASSIFICATION: "token_agreement",
    Task.QUESTION_ANSWERING: "span_agreement",
    Task.FEATURE_EXTRACTION: "embedding_cosine_mean",
}
# Metrics reported beside the headline one (feature extraction: what a distilled student is judged on).
EXTRA_METRICS: dict[Task, tuple[str, ...]] = {Task.FEATURE_EXTRACTION: ("embedding_spearman",)}
SHORT_NAMES: dict[str, str] = {"embedding_cosine_mean": "cosine mean", "embedding_spearman": "Spearman"}


def agreement_applicable(baseline: dict[str, Any], student: dict[str, Any]) -> str | None:
    """``None`` when agreement with the baseline means something, else the reason it does not.

    Both dicts hold ``random_weights``, ``task``, ``labels`` and (when known) ``vocab_size``.
    """
    if baseline.get("random_weights") or student.get("random_weights"):
        return RANDOM_NOTE
    if baseline.get("task") != student.get("task"):
        return f"agreement not meaningful (baseline task {baseline.get('task')}, student {student.get('task')})"
    if list(baseline.get("labels") or []) != list(student.get("labels") or []):
        return "agreement not meaningful (baseline and student have different labels)"
    if baseline.get("vocab_size") and student.get("vocab_size") and baseline["vocab_size"] != student["vocab_size"]:
        return "agreement not meaningful (baseline and student tokenizers differ)"
    return None


def agreement(task: Task, feeds: list[dict], reference: list[dict], candidate: list[dict]) -> float:
    """Agreement of ``candidate`` with ``reference`` outputs over ``feeds`` (fraction in [0, 1], or cosine).

    Sequence classification: same argmax; token classification: same label per real token; QA: same best span;
    feature extraction: mean cosine similarity of the ``(B, H)`` embeddings.
    """
    scores: list[float] = []
    for feed, ref, got in zip(feeds, reference, candidate):
        mask = feed["attention_mask"]
        for b in range(mask.shape[0]):
            n = int(mask[b].sum())
            if task is Task.SEQUENCE_CLASSIFICATION:
                scores.append(float(np.argmax(ref["logits"][b]) == np.argmax(got["logits"][b])))
            elif task is Task.TOKEN_CLASSIFICATION:
                same = np.argmax(ref["logits"][b, :n], -1) == np.argmax(got["logits"][b, :n], -1)
                scores.extend(same.astype(float).tolist())
            elif task is Task.QUESTION_ANSWERING:
                r = best_span(ref["start_logits"][b, :n], ref["end_logits"][b, :n])
                g = best_span(got["start_logits"][b, :n], got["end_logits"][b, :n])
                scores.append(float(r == g))
            else:
                a = ref["embedding"][b].astype(np.float64)
                c = got["embedding"][b].astype(np.float64)
                scores.append(float(a @ c / max(np.linalg.norm(a) * np.linalg.norm(c), 1e-12)))
    return float(np.mean(scores))


def extra_agreement(task: Task, feeds: list[dict], reference: list[dict], candidate: list[dict]) -> dict[str, float]:
    """The :data:`EXTRA_METRICS` of ``task`` for ``candidate`` against ``reference`` over ``feeds``.

    Feature extraction: ``embedding_spearman``, the Spearman correlation of all pairwise cosines of the ``(B, H)``
    embeddings of every sequence of every feed (see :func:`pocketbert.parity.metrics.embedding_spearman`).
    """
    if task is not Task.FEATURE_EXTRACTION:
        return {}
    ref = [row for out in reference for row in out["embedding"]]
    got = [row for out in candidate for row in out["embedding"]]
    return {"embedding_spearman": embedding_spearman(ref, got)}


def agreement_text(fidelity: dict[str, Any], name: str) -> str:
    """Runner ``name``'s agreement with the baseline for a table cell, from a report's ``fidelity_vs_baseline``:
    ``"0.9750"``, or for several metrics ``"cosine mean 0.9912, Spearman 0.9650"``; ``"n/a"`` when not meaningful
    (the reason is :func:`agreement_note`'s) and ``"–"`` for a runner without a value (the baseline, a failure)."""
    if not fidelity.get("meaningful"):
        return "n/a"
    if name not in fidelity.get("values", {}):
        return "–"
    extra = (fidelity.get("extra") or {}).get(name) or {}
    if not extra:
        return f"{fidelity['values'][name]:.4f}"
    metrics = {fidelity["metric"]: fidelity["values"][name], **extra}
    return ", ".join(f"{SHORT_NAMES.get(k, k)} {v:.4f}" for k, v in metrics.items())


def agreement_note(fidelity: dict[str, Any]) -> str:
    """One sentence saying which metric the agreement column holds, or why it says n/a."""
    if not fidelity.get("meaningful"):
        return f"Agreement with the baseline: {fidelity.get('note') or 'not measured'}."
    metrics = [fidelity["metric"], *sorted({k for v in (fidelity.get("extra") or {}).values() for k in v})]
    return f"Agreement with the baseline ({', '.join(metrics)}) on {fidelity.get('num_sequences')} parity sequences."


PARITY_METRICS: dict[str, tuple[str, ...]] = {
    "sequence-classification": ("top1_agreement", "logits.cosine_min"),
    "token-classification": ("token_agreement", "logits.cosine_min"),
    "question-answering": ("span_agreement", "start_logits.cosine_min"),
    "feature-extraction": ("embedding.cosine_min", "rank_spearman"),
}


def parity_fidelity(parity: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per artifact, the headline fidelity metric of ``OUT/report/parity.json`` (vs the student in PyTorch)."""
    if not parity:
        return {}
    keys = PARITY_METRICS.get(str(parity.get("task")), ())
    found: dict[str, dict[str, Any]] = {}
    for artifact in parity.get("artifacts", []):
        metrics = artifact.get("metrics") or {}
        for key in keys:
            if isinstance(metrics.get(key), int | float):
                found[artifact["name"]] = {"metric": key, "value": float(metrics[key])}
                break
    return found
