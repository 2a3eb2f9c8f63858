"""A BertModel re-expressed as DistilBERT computes the same function, and then exports like any DistilBERT."""

from __future__ import annotations

import pytest
import torch

from pocketbert.errors import PocketbertError
from pocketbert.loading import load_model
from pocketbert.remap import bert_as_distilbert


def test_remapped_model_matches_bert_on_real_tokens(tiny_models):
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    distil = bert_as_distilbert(loaded.model)
    enc = loaded.tokenizer(["one segment of text, padded", "short"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = loaded.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        got = distil(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    valid = enc["attention_mask"].bool()
    torch.testing.assert_close(got[valid], ref[valid], atol=1e-5, rtol=1e-4)
    assert distil.config.model_type == "distilbert" and distil.config.n_layers == loaded.model.config.num_hidden_layers


def test_refuses_what_distilbert_cannot_express(tiny_models):
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    loaded.model.config.hidden_act = "relu"
    with pytest.raises(PocketbertError, match="GELU"):
        bert_as_distilbert(loaded.model)
