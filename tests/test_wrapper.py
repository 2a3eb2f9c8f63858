"""The deployment wrapper computes what the Hugging Face model computes, padding included."""

from __future__ import annotations

import pytest
import torch

from pocketbert.loading import load_model
from pocketbert.tasks import output_specs
from pocketbert.wrapper import DeploymentModel, reference_outputs
from tests.tiny import ARCHS, TASKS

TEXTS = ["a short one", "a much longer sentence, with punctuation and Ünïcödé, that needs no padding at all"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_wrapper_matches_hf_on_valid_tokens(tiny_models, arch, task):
    loaded = load_model(str(tiny_models(arch, task)))
    enc = loaded.tokenizer(TEXTS, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert mask[0].sum() < mask.shape[1], "the test needs a padded row"
    ref = reference_outputs(loaded.model, loaded.task, ids, mask)
    wrapper = DeploymentModel(loaded.model, loaded.task)
    with torch.inference_mode():
        got = dict(zip(wrapper.output_names, wrapper(ids.to(torch.int32), mask.to(torch.int32))))
    for spec in output_specs(loaded.task):
        r, g = ref[spec.name], got[spec.name]
        assert g.shape == r.shape
        if spec.per_token:
            valid = mask.bool()
            r, g = r[valid], g[valid]
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def test_wrapper_does_not_touch_the_original_model(tiny_models):
    loaded = load_model(str(tiny_models("distilbert", "feature-extraction")))
    before = loaded.model.config._attn_implementation
    DeploymentModel(loaded.model, loaded.task)
    assert loaded.model.config._attn_implementation == before
