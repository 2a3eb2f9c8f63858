"""Static sequence-length buckets: choose one per text, and run a batch-1 static-shape model over a batch.

Formats with static shapes (TFLite signatures, Core ML enumerated shapes) are exported once per bucket length; a
text of ``n`` real tokens runs in the smallest bucket ``>= n`` so a short text does not pay for the longest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.tasks import Task, output_specs


def choose_bucket(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``length`` tokens (buckets ascending), or a one-line error."""
    for bucket in buckets:
        if length <= bucket:
            return bucket
    raise PocketbertError(f"input of {length} tokens is longer than the largest bucket {buckets[-1]}; truncate it")


def run_bucketed(
    feed: dict[str, np.ndarray],
    buckets: Sequence[int],
    task: Task,
    run_one: Callable[[int, np.ndarray, np.ndarray], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Run a ``(B, S)`` feed one row at a time through a batch-1 model with static bucket lengths.

    Each row is cut to its real tokens (``attention_mask`` sum ``n``), padded with zeros to ``choose_bucket(n)``
    and passed as ``run_one(bucket, input_ids (1, bucket), attention_mask (1, bucket))``, which returns the
    model's outputs for that row. Per-token outputs are cut back to ``n`` and zero-padded to ``S`` (padded positions
    carry no meaning and parity ignores them); rows are stacked back into ``(B, …)`` arrays. Outputs beyond the
    task's (layer probes, :mod:`pocketbert.parity.localize`) are per token when their first axis is the bucket.
    """
    ids, mask = feed["input_ids"], feed["attention_mask"]
    batch, seq = ids.shape
    per_token = {spec.name: spec.per_token for spec in output_specs(task)}
    rows: dict[str, list[np.ndarray]] = {}
    for b in range(batch):
        n = int(mask[b].sum())
        bucket = choose_bucket(n, buckets)
        row_ids = np.zeros((1, bucket), dtype=ids.dtype)
        row_mask = np.zeros((1, bucket), dtype=mask.dtype)
        row_ids[0, :n] = ids[b, :n]
        row_mask[0, :n] = 1
        out = run_one(bucket, row_ids, row_mask)
        for name in out:
            value = np.asarray(out[name])[0]
            # an output beyond the task's (a layer probe) is per token when its first axis is the bucket
            if per_token.get(name, value.ndim >= 1 and value.shape[0] == bucket):
                padded = np.zeros((seq, *value.shape[1:]), dtype=np.float32)
                padded[:n] = value[:n]
                value = padded
            rows.setdefault(name, []).append(value.astype(np.float32))
    return {name: np.stack(values) for name, values in rows.items()}
