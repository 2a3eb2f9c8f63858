"""Tiny random DistilBERT and BERT checkpoints for tests, saved with ``save_pretrained`` and loaded for real."""

from __future__ import annotations

from pathlib import Path

ARCHS = ("distilbert", "bert")
TASKS = ("feature-extraction", "sequence-classification", "question-answering", "token-classification")


def tiny_config(arch: str, num_labels: int = 3):  # noqa: ANN201
    """A 2-layer, 32-wide model of ``arch``; initializer_range 0.2 spreads the logits so argmaxes are not ties."""
    from transformers import BertConfig, DistilBertConfig

    labels = {i: f"label_{chr(97 + i)}" for i in range(num_labels)}
    common = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}, "initializer_range": 0.2}
    if arch == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=256, **common)
    return BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        **common,
    )


def save_tiny(path: Path, arch: str, task: str, seed: int = 0) -> Path:
    """Build a tiny random model for ``task`` and save it (weights, config, uncased tokenizer) to ``path``."""
    import torch
    import transformers

    from pocketbert.loading import uncased_tokenizer

    classes = {
        "feature-extraction": transformers.AutoModel,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "question-answering": transformers.AutoModelForQuestionAnswering,
        "token-classification": transformers.AutoModelForTokenClassification,
    }
    torch.manual_seed(seed)
    model = classes[task].from_config(tiny_config(arch, num_labels=2 if task == "question-answering" else 3))
    model.save_pretrained(path)
    uncased_tokenizer(model.config.max_position_embeddings).save_pretrained(path)
    return path
