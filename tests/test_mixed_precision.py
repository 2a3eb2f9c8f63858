"""Layer localisation and parity-budgeted mixed precision (ONNX) on tiny models built to have a known culprit."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from onnx import numpy_helper

from pocketbert.cli import main
from pocketbert.errors import PocketbertError
from pocketbert.export.artifact import ExportSettings, read_manifest
from pocketbert.export.pipeline import export_model
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds
from pocketbert.parity.localize import culprit, localize_onnx
from pocketbert.quantize.mixed import Unit, parse_budget, search
from tests.tiny import save_tiny

OUTLIER_MODULE = "encoder.layer.1.output.dense"


@pytest.fixture(scope="module")
def outlier_model(tmp_path_factory):
    """A tiny BERT whose layer-1 FFN output projection carries huge weights on a dead input unit.

    Unit 0 of the layer's GELU never fires (bias -1000), so the float model ignores the outlier column; per-channel
    int8 must spend every output channel's range on it, and the layer's real weights round to zero.
    """
    path = save_tiny(tmp_path_factory.mktemp("outlier"), "bert", "feature-extraction", seed=1)
    loaded = load_model(str(path))
    layer = loaded.model.encoder.layer[1]
    with torch.no_grad():
        layer.intermediate.dense.bias[0] = -1000.0
        layer.output.dense.weight[:, 0] = 500.0 * layer.output.dense.weight.abs().max()  # (out, in)
    loaded.model.save_pretrained(path)
    return path


def test_budget_keeps_exactly_the_outlier_layer_float(outlier_model, tmp_path):
    loaded = load_model(str(outlier_model))
    out = tmp_path / "out"
    plain = export_model(loaded, ["onnx"], ["fp32", "int8"], out)["artifacts"][1]
    assert plain["metadata"]["float_ops"] and "mixed_precision" not in plain["metadata"]
    before = check_parity(out, loaded=loaded, only=["onnx-int8"]).artifacts[0].metrics["embedding.cosine_min"]
    settings = ExportSettings(int8_budget="cosine>=0.99")
    export_model(loaded, ["onnx"], ["int8"], out, settings)
    artifact = read_manifest(out)["artifacts"][1]
    mixed = artifact["metadata"]["mixed_precision"]
    assert mixed["met"] is True
    assert [u["module"] for u in mixed["float_units"]] == [OUTLIER_MODULE]
    assert artifact["scheme"] == "dynamic-per-channel-mixed"
    after = check_parity(out, loaded=loaded, only=["onnx-int8"]).artifacts[0].metrics["embedding.cosine_min"]
    assert before < 0.99 <= after, (before, after)  # held-out parity texts, not the calibration texts


def test_diagnose_names_a_damaged_block_first(tiny_models, tmp_path):
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    out = tmp_path / "out"
    export_model(loaded, ["onnx"], ["fp32"], out)
    reference = out / "onnx/fp32/model.onnx"
    model = onnx.load(str(reference))
    weights = {i.name: i for i in model.graph.initializer}
    damaged = 0
    for node in model.graph.node:
        namespace = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
        if node.op_type == "MatMul" and "layer.1.attention.output.dense" in namespace and node.input[1] in weights:
            init = weights[node.input[1]]
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
            damaged += 1
    assert damaged == 1
    candidate = tmp_path / "damaged.onnx"
    onnx.save(model, str(candidate))
    feeds = build_feeds(loaded.tokenizer, list(BUILTIN_TEXTS[:8]), 64)
    rows = localize_onnx(reference, candidate, feeds, tmp_path / "scratch")
    assert [r.block for r in rows][:3] == ["embeddings", "layer 0 attention", "layer 0 ffn"]
    assert all(1 - r.cosine_min < 1e-6 for r in rows[:3]), "blocks before the damage are untouched"
    assert culprit(rows).block == "layer 1 attention"


def test_diagnose_cli_writes_table_plot_and_json(tiny_models, tmp_path, capsys):
    loaded = load_model(str(tiny_models("distilbert", "sequence-classification")))
    out = tmp_path / "out"
    export_model(loaded, ["onnx"], ["fp32", "int8"], out)
    assert main(["diagnose", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layer 1 ffn" in text and "grows most" in text
    data = json.loads((out / "report/diagnose-onnx-int8.json").read_text())
    assert [b["block"] for b in data["blocks"]][0] == "embeddings"
    assert (out / "report/diagnose-onnx-int8.png").stat().st_size > 1000
    assert main(["diagnose", str(out), "--artifact", "onnx-int4"]) == 2


def test_search_walks_the_sensitivity_ranking():
    units = [Unit(n, n) for n in "abcd"]
    damage = {"a": 0.001, "b": 0.02, "c": 0.0001, "d": 0.01}  # error each unit adds when quantized
    calls = []

    def evaluate(quantized):
        calls.append(set(quantized))
        return {"logits.cosine_min": 1.0 - sum(damage[u] for u in quantized)}

    result = search(units, evaluate, "cosine>=0.995")
    assert [u["name"] for u in result.float_units] == ["b", "d"]
    assert result.met and result.metrics["logits.cosine_min"] == pytest.approx(1 - 0.0011)
    assert calls[0] == set("abcd") and len(calls) == 1 + 4 + 2
    with pytest.raises(PocketbertError, match="not met even with every weight in float"):
        search(units, lambda q: {"logits.cosine_min": 0.5}, "cosine>=0.995")


@pytest.mark.parametrize(
    "text, message",
    [
        ("cosine>0.9", "is not 'metric>=value'"),
        ("cosine<=0.9", "bounded with >="),
        ("", "empty budget"),
        ("speed>=2", "unknown gate 'speed'"),
    ],
)
def test_bad_budgets(text, message):
    with pytest.raises(PocketbertError, match=message):
        parse_budget(text)
