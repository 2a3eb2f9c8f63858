"""Shared fixtures: tiny random DistilBERT and BERT checkpoints saved with ``save_pretrained``.

Tests never touch the network: ``HF_HUB_OFFLINE=1`` is set before transformers is imported.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pocketbert.quiet import quiet_third_party  # noqa: E402

quiet_third_party()

from tests.tiny import save_tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_models(arch, task) -> Path``: each tiny checkpoint is built once per test session."""
    cache: dict[tuple[str, str], Path] = {}

    def get(arch: str, task: str) -> Path:
        if (arch, task) not in cache:
            cache[(arch, task)] = save_tiny(tmp_path_factory.mktemp(f"{arch}-{task}"), arch, task)
        return cache[(arch, task)]

    return get


@pytest.fixture(scope="session")
def onnx_out(tiny_models, tmp_path_factory) -> Path:
    """An OUT holding the ONNX fp32 export of the tiny DistilBERT classifier, built once: copy it before changing it."""
    from pocketbert.cli import main

    out = tmp_path_factory.mktemp("onnx-out") / "out"
    model = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", model, "--format", "onnx", "--precision", "fp32", "-o", str(out)]) == 0
    return out
