"""The teacher's outputs on the training split, computed once and reused every epoch.

The teacher is frozen and in eval mode (no dropout), so its outputs for a text do not change between epochs; with
padding masked out they do not depend on the batch either. Caching them removes the teacher's forward pass from
every step after the first epoch (for a 6-layer teacher and a 3-layer student about 40% of a step's arithmetic).
Only what the losses read is kept, per example and unpadded, in float32 on the CPU; the cache is skipped when it
would exceed its memory limit (``DistillConfig.teacher_cache_mb``).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import torch

from pocketbert.distill.config import DistillConfig
from pocketbert.distill.data import Encoded, collate
from pocketbert.distill.evaluate import forward
from pocketbert.distill.losses import MASK_LOGIT, needs_hidden_states
from pocketbert.tasks import Task

BATCH = 64


def _hidden_keys(task: Task, config: DistillConfig, layer_map: list[int]) -> list[int]:
    """``hidden_states`` indices the losses read (see ``losses._hidden_pairs``)."""
    if not needs_hidden_states(task, config):
        return []
    if config.hidden_layers == "mapped":
        return [t + 1 for t in layer_map]
    return [-1]


def _per_token_fields(task: Task) -> list[str]:
    if task is Task.FEATURE_EXTRACTION:
        return ["last_hidden_state"]
    if task is Task.QUESTION_ANSWERING:
        return ["start_logits", "end_logits"]
    if task is Task.TOKEN_CLASSIFICATION:
        return ["logits"]
    return []


def cache_bytes(task: Task, config: DistillConfig, layer_map: list[int], hidden: int, labels: int, tokens: int) -> int:
    """Bytes the cache would take for ``tokens`` training tokens (float32)."""
    per_token = len(_hidden_keys(task, config, layer_map)) * hidden
    per_token += {Task.FEATURE_EXTRACTION: hidden, Task.QUESTION_ANSWERING: 2, Task.TOKEN_CLASSIFICATION: labels}.get(
        task, 0
    )
    return 4 * tokens * per_token


class TeacherCache:
    """Per-example teacher outputs for the losses, re-padded into a batch output on demand."""

    def __init__(self, items: list[dict[str, Any]], task: Task, keys: list[int]) -> None:
        self.items = items
        self.task = task
        self.keys = keys

    @staticmethod
    def build(
        teacher: Any,
        train_set: list[Encoded],
        task: Task,
        config: DistillConfig,
        layer_map: list[int],
        pad_id: int,
        device: str,
        quiet: bool,
    ) -> TeacherCache:
        """Run the teacher over ``train_set`` in length-sorted batches of :data:`BATCH` and keep what the losses
        read, unpadded: per-token tensors ``(S_i, ...)`` and per-sequence ones (classification logits ``(L,)``)."""
        from tqdm.auto import tqdm

        keys = _hidden_keys(task, config, layer_map)
        token_fields = _per_token_fields(task)
        order = sorted(range(len(train_set)), key=lambda i: len(train_set[i].input_ids))
        items: list[dict[str, Any]] = [{} for _ in train_set]
        bar = tqdm(
            total=len(order),
            desc="teacher outputs",
            unit="text",
            disable=quiet,
            file=sys.stderr,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )
        with torch.inference_mode():
            for start in range(0, len(order), BATCH):
                chunk = order[start : start + BATCH]
                batch = collate([train_set[i] for i in chunk], pad_id, device)
                out = forward(teacher, batch, bool(keys))
                for row, index in enumerate(chunk):
                    n = len(train_set[index].input_ids)
                    item = {name: getattr(out, name)[row, :n].float().cpu().clone() for name in token_fields}
                    if task is Task.SEQUENCE_CLASSIFICATION:
                        item["logits"] = out.logits[row].float().cpu().clone()
                    for key in keys:
                        item[f"hidden_{key}"] = out.hidden_states[key][row, :n].float().cpu().clone()
                    items[index] = item
                bar.update(len(chunk))
        bar.close()
        return TeacherCache(items, task, keys)

    def batch(self, indices: list[int], width: int, device: str) -> Any:
        """The teacher's output for the training examples ``indices`` padded to ``width`` tokens, shaped like a
        Hugging Face output (``last_hidden_state`` / ``logits`` / ``start_logits`` / ``end_logits``
        ``(B, S, ...)`` and ``hidden_states`` indexable by the keys the losses use). Padded positions hold 0
        (QA logits: the mask constant); the losses never read them."""
        chosen = [self.items[i] for i in indices]
        fields: dict[str, Any] = {}

        def pad(name: str, fill: float) -> torch.Tensor:
            first = chosen[0][name]
            out = torch.full((len(chosen), width, *first.shape[1:]), fill, dtype=first.dtype)
            for row, item in enumerate(chosen):
                out[row, : item[name].shape[0]] = item[name]
            return out.to(device)

        for name in _per_token_fields(self.task):
            fields[name] = pad(name, MASK_LOGIT if self.task is Task.QUESTION_ANSWERING else 0.0)
        if self.task is Task.SEQUENCE_CLASSIFICATION:
            fields["logits"] = torch.stack([item["logits"] for item in chosen]).to(device)
        if self.keys:
            fields["hidden_states"] = {key: pad(f"hidden_{key}", 0.0) for key in self.keys}
        return SimpleNamespace(**fields)
