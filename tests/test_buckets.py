"""Bucket choice and bucketed execution of a batch-1 static model."""

from __future__ import annotations

import numpy as np
import pytest

from pocketbert.core.buckets import choose_bucket, run_bucketed
from pocketbert.errors import PocketbertError
from pocketbert.tasks import Task


def test_choose_bucket_picks_smallest_that_fits():
    assert choose_bucket(1, [32, 64, 128]) == 32
    assert choose_bucket(32, [32, 64, 128]) == 32
    assert choose_bucket(33, [32, 64, 128]) == 64
    with pytest.raises(PocketbertError, match="longer than the largest bucket 128"):
        choose_bucket(129, [32, 64, 128])


def test_run_bucketed_pads_each_row_and_restores_shapes():
    seen = []

    def run_one(bucket, ids, mask):
        seen.append((bucket, int(mask.sum()), ids.shape))
        # per-token logits = the ids themselves, so we can check the rows come back in place
        return {"start_logits": ids.astype(np.float32), "end_logits": -ids.astype(np.float32)}

    ids = np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 9]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    out = run_bucketed({"input_ids": ids, "attention_mask": mask}, [2, 4, 8], Task.QUESTION_ANSWERING, run_one)
    assert seen == [(4, 3, (1, 4)), (8, 5, (1, 8))]
    np.testing.assert_array_equal(out["start_logits"], ids.astype(np.float32))
    assert out["end_logits"].shape == (2, 5)
