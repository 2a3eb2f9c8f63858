"""Layer localisation and parity-budgeted mixed precision, in every format, on tiny models with a known culprit."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from pocketbert.cli import main
from pocketbert.core.artifact import ExportSettings, manifest_artifacts, read_manifest
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds
from pocketbert.parity.localize import culprit, localize, probe_runner
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


def _artifact_metadata(out, artifact):
    """The metadata stored inside the artifact file itself (not the manifest), as a dict."""
    path = out / artifact["path"]
    if artifact["format"] == "onnx":
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return {k: json.loads(v) if k == "mixed_precision" else v for k, v in props.items()}
    if artifact["format"] == "tflite":
        from pocketbert.formats.tflite.export import read_metadata

        return read_metadata(path)
    import coremltools as ct

    meta = dict(ct.utils.load_spec(str(path)).description.metadata.userDefined)
    return {k: json.loads(v) if k == "mixed_precision" else v for k, v in meta.items()}


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "coreml"])
def test_budget_keeps_exactly_the_outlier_layer_float(fmt, outlier_model, tmp_path):
    loaded = load_model(str(outlier_model))
    out = tmp_path / "out"
    plain = export_model(loaded, [fmt], ["int8"], out)["artifacts"][0]
    assert "mixed_precision" not in plain["metadata"]
    name = f"{fmt}-int8"
    before = check_parity(out, loaded=loaded, only=[name]).artifacts[0].metrics["embedding.cosine_min"]
    settings = ExportSettings(int8_budget="cosine>=0.99")
    lines: list[str] = []
    export_model(loaded, [fmt], ["int8"], out, settings, progress=lines.append)
    assert any(line.startswith("budget: met with 1 of ") for line in lines), lines  # the user sees the search
    artifact = read_manifest(out)["artifacts"][0]
    mixed = artifact["metadata"]["mixed_precision"]
    assert mixed["met"] is True
    assert [u["module"] for u in mixed["float_units"]] == [OUTLIER_MODULE]
    assert artifact["scheme"].endswith("-mixed")
    stored = _artifact_metadata(out, artifact)["mixed_precision"]  # the artifact carries it too, for the app
    assert [u["module"] for u in stored["float_units"]] == [OUTLIER_MODULE]
    after = check_parity(out, loaded=loaded, only=[name]).artifacts[0].metrics["embedding.cosine_min"]
    assert before < 0.99 <= after, (before, after)  # held-out parity texts, not the calibration texts


def test_budget_refuses_static_int8(tiny_models, tmp_path):
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    settings = ExportSettings(int8_budget="cosine>=0.99", int8_scheme="static")
    with pytest.raises(PocketbertError, match="applies to dynamic"):
        export_model(loaded, ["onnx"], ["int8"], tmp_path / "out", settings)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "fmt, arch",
    [
        ("onnx", "bert"),
        ("tflite", "bert"),
        ("tflite", "distilbert"),
        ("coreml", "distilbert"),
        ("executorch", "bert"),
        ("executorch", "distilbert"),
    ],
)
def test_diagnose_names_a_damaged_block_first(fmt, arch, tiny_models, tmp_path):
    """The same model exported twice, the second time with layer 1's attention output projection scaled x1.5."""
    path = tiny_models(arch, "feature-extraction")
    exports = {}
    for tag in ("reference", "damaged"):
        loaded = load_model(str(path))
        if tag == "damaged":
            layer = loaded.model.encoder.layer[1] if arch == "bert" else loaded.model.transformer.layer[1]
            dense = layer.attention.output.dense if arch == "bert" else layer.attention.out_lin
            with torch.no_grad():
                dense.weight.mul_(1.5)
        export_model(loaded, [fmt], ["fp32"], tmp_path / tag)
        exports[tag] = manifest_artifacts(read_manifest(tmp_path / tag))[0]
    feeds = build_feeds(loaded.tokenizer, list(BUILTIN_TEXTS[:8]), 64)
    runners = [probe_runner(exports[t], tmp_path / t, tmp_path / "scratch", loaded.task) for t in exports]
    rows = localize(*runners, feeds)
    assert [r.block for r in rows] == [
        "embeddings",
        "layer 0 attention",
        "layer 0 ffn",
        "layer 1 attention",
        "layer 1 ffn",
    ]
    assert all(1 - r.cosine_min < 1e-6 for r in rows[:3]), "blocks before the damage are untouched"
    assert 1 - rows[3].cosine_min > 1e-4
    assert culprit(rows).block == "layer 1 attention"


def test_diagnose_cli_writes_table_plot_and_json(tiny_models, tmp_path, capsys):
    loaded = load_model(str(tiny_models("distilbert", "sequence-classification")))
    out = tmp_path / "out"
    export_model(loaded, ["onnx", "tflite"], ["fp32", "int8"], out)
    assert main(["diagnose", str(out)]) == 0  # the first int8 artifact, against its format's fp32
    text = capsys.readouterr().out
    assert "layer 1 ffn" in text and "grows most" in text
    data = json.loads((out / "report/diagnose-onnx-int8.json").read_text())
    assert data["against"] == "onnx-fp32"
    assert [b["block"] for b in data["blocks"]][0] == "embeddings"
    assert (out / "report/diagnose-onnx-int8.png").stat().st_size > 1000
    assert main(["diagnose", str(out), "--artifact", "tflite-int8", "--against", "onnx-fp32"]) == 0  # across formats
    assert json.loads((out / "report/diagnose-tflite-int8.json").read_text())["against"] == "onnx-fp32"
    assert main(["diagnose", str(out), "--artifact", "onnx-int4"]) == 2
    assert main(["diagnose", str(out), "--artifact", "tflite-int8", "--against", "coreml-fp32"]) == 2
    assert "no artifact named onnx-int4" in capsys.readouterr().err


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
