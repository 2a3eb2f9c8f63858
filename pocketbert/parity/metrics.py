"""Parity metrics: numeric error per output and task-level agreement, computed over valid (unpadded) tokens.

Metric names are ``<output>.<metric>`` for per-output numbers and bare names for task metrics:

* ``<out>.max_abs`` / ``<out>.mean_abs``: absolute error over valid positions;
* ``<out>.rel_max_abs``: ``max_abs`` divided by the largest ``|reference|`` value;
* ``<out>.cosine_min``: the lowest cosine similarity between a sequence's reference and candidate values
  (each sequence's valid positions flattened into one vector);
* ``nonfinite``: count of NaN/Inf values in the candidate's outputs (always gated at 0);
* ``top1_agreement`` (sequence classification), ``token_agreement`` (token classification),
  ``span_agreement`` (question answering: same best answer span), ``rank_spearman`` (feature extraction: Spearman
  correlation of all pairwise cosine similarities between the texts' embeddings).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pocketbert.tasks import Task, output_specs

MAX_ANSWER_TOKENS = 30

Outputs = dict[str, np.ndarray]


def _sequences(outputs: list[Outputs], feeds: list[dict], name: str, per_token: bool) -> list[np.ndarray]:
    """One array per sequence: its valid positions only for per-token outputs."""
    rows = []
    for out, feed in zip(outputs, feeds):
        values = out[name]
        mask = feed["attention_mask"]
        for b in range(values.shape[0]):
            rows.append(values[b, : int(mask[b].sum())] if per_token else values[b])
    return rows


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def best_span(start: np.ndarray, end: np.ndarray, max_len: int = MAX_ANSWER_TOKENS) -> tuple[int, int]:
    """Answer span ``(i, j)`` with ``i <= j < i + max_len`` maximising ``start[i] + end[j]`` (1-D logits)."""
    n = start.shape[0]
    scores = start[:, None] + end[None, :]  # (n, n)
    i, j = np.indices((n, n))
    scores = np.where((j >= i) & (j < i + max_len), scores, -np.inf)
    flat = int(np.argmax(scores))
    return flat // n, flat % n


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return 1.0
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return _cosine(ra - ra.mean(), rb - rb.mean())


def _pairwise(embeddings: list[np.ndarray]) -> np.ndarray:
    e = np.stack(embeddings).astype(np.float64)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sims = e @ e.T
    return sims[np.triu_indices(len(embeddings), k=1)]


def _task_metrics(task: Task, ref: dict[str, list], got: dict[str, list]) -> dict[str, float]:
    if task is Task.SEQUENCE_CLASSIFICATION:
        agree = [int(np.argmax(r) == np.argmax(g)) for r, g in zip(ref["logits"], got["logits"])]
        return {"top1_agreement": float(np.mean(agree))}
    if task is Task.TOKEN_CLASSIFICATION:
        agree = np.concatenate([np.argmax(r, -1) == np.argmax(g, -1) for r, g in zip(ref["logits"], got["logits"])])
        return {"token_agreement": float(agree.mean())}
    if task is Task.QUESTION_ANSWERING:
        pairs = zip(ref["start_logits"], ref["end_logits"], got["start_logits"], got["end_logits"])
        agree = [best_span(rs, re) == best_span(gs, ge) for rs, re, gs, ge in pairs]
        return {"span_agreement": float(np.mean(agree))}
    return {"rank_spearman": embedding_spearman(ref["embedding"], got["embedding"])}


def embedding_spearman(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """Spearman correlation in [-1, 1] between the pairwise cosine similarities of two sets of embeddings.

    ``reference`` and ``candidate`` hold the same N texts' embeddings, each a ``(H,)`` vector; the N(N-1)/2 cosines
    of each set are ranked and correlated (1.0: the candidate orders every pair of texts as the reference does).
    """
    return _spearman(_pairwise(reference), _pairwise(candidate))


def compare_outputs(task: Task, feeds: list[dict], ref: list[Outputs], got: list[Outputs]) -> dict[str, float]:
    """All metrics of one candidate against the reference, over the same feeds (see the module docstring)."""
    metrics: dict[str, float] = {}
    ref_rows: dict[str, list] = {}
    got_rows: dict[str, list] = {}
    nonfinite = 0
    for spec in output_specs(task):
        r_rows = _sequences(ref, feeds, spec.name, spec.per_token)
        g_rows = _sequences(got, feeds, spec.name, spec.per_token)
        ref_rows[spec.name], got_rows[spec.name] = r_rows, g_rows
        r_all = np.concatenate([r.ravel() for r in r_rows]).astype(np.float64)
        g_all = np.concatenate([g.ravel() for g in g_rows]).astype(np.float64)
        finite = np.isfinite(g_all)
        nonfinite += int((~finite).sum())
        diff = np.abs(np.where(finite, g_all, 0.0) - r_all)
        metrics[f"{spec.name}.max_abs"] = float(diff.max()) if finite.all() else float("inf")
        metrics[f"{spec.name}.mean_abs"] = float(diff.mean()) if finite.all() else float("inf")
        scale = float(np.abs(r_all).max()) or 1.0
        metrics[f"{spec.name}.rel_max_abs"] = metrics[f"{spec.name}.max_abs"] / scale
        metrics[f"{spec.name}.cosine_min"] = min(_cosine(r, g) for r, g in zip(r_rows, g_rows))
    metrics["nonfinite"] = float(nonfinite)
    if nonfinite == 0:
        metrics.update(_task_metrics(task, ref_rows, got_rows))
    return metrics


CompareFunc = Callable[[Task, list[dict], list[Outputs], list[Outputs]], dict[str, float]]
