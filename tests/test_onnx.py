"""ONNX export, int8 and parity on tiny DistilBERT and BERT models, through the real loading path."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pocketbert.core.artifact import ExportSettings, read_manifest
from pocketbert.exporting.pipeline import export_model
from pocketbert.formats.onnx.quantize import preprocess
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from pocketbert.parity.data import BUILTIN_TEXTS
from tests.tiny import ARCHS, TASKS


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_export_fp32_int8_and_parity(tiny_models, tmp_path, arch, task):
    loaded = load_model(str(tiny_models(arch, task)))
    out = tmp_path / "out"
    manifest = export_model(loaded, ["onnx"], ["fp32", "int8"], out)
    names = [a["name"] for a in manifest["artifacts"]]
    assert names == ["onnx-fp32", "onnx-int8"]
    for artifact in manifest["artifacts"]:
        model = onnx.load(str(out / artifact["path"]))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version >= 17
        assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
        assert [o.name for o in model.graph.output] == [o["name"] for o in artifact["outputs"]]
        props = {p.key: p.value for p in model.metadata_props}
        assert props["task"] == task and props["precision"] == artifact["precision"]
    int8 = manifest["artifacts"][1]
    assert int8["scheme"] == "dynamic-per-channel"
    assert int8["size_bytes"] < manifest["artifacts"][0]["size_bytes"] / 2.5
    report = check_parity(out, loaded=loaded)
    assert report.passed, [(a.name, a.failures, a.error) for a in report.artifacts]


def test_dynamic_batch_and_sequence_axes(tiny_models, tmp_path):
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    out = tmp_path / "out"
    export_model(loaded, ["onnx"], ["fp32"], out)
    session = ort.InferenceSession(str(out / "onnx/fp32/model.onnx"))
    for batch, seq in [(1, 3), (3, 7), (2, 200)]:
        feed = {"input_ids": np.full((batch, seq), 1000, np.int64), "attention_mask": np.ones((batch, seq), np.int64)}
        hidden, embedding = session.run(None, feed)
        assert hidden.shape == (batch, seq, 32) and embedding.shape == (batch, 32)
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)


def test_static_int8_records_calibration_and_float_ops(tiny_models, tmp_path):
    loaded = load_model(str(tiny_models("distilbert", "sequence-classification")))
    texts = tmp_path / "calib.txt"
    lines = [t for t in BUILTIN_TEXTS if t.strip()][::2]  # half the parity texts: calibration from a user file
    texts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    settings = ExportSettings(calibration_file=str(texts))
    export_model(loaded, ["onnx"], ["int8-static"], out, settings)
    artifact = read_manifest(out)["artifacts"][0]
    assert artifact["scheme"] == "static-qdq-per-channel"
    assert artifact["metadata"]["calibration_texts"] == len(lines)
    assert "Softmax" in artifact["metadata"]["float_ops"]
    ops = {n.op_type for n in onnx.load(str(out / artifact["path"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    report = check_parity(out, loaded=loaded)
    assert report.passed, report.artifacts[0].failures


def test_preprocess_makes_dynamo_graph_quantizable(tiny_models, tmp_path, monkeypatch):
    """ORT's symbolic shape inference stops on the raw dynamo graph; the pre-processing pass fixes it."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    monkeypatch.chdir(tmp_path)  # the failing inference dumps sym_shape_infer_temp.onnx into the cwd

    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    out = tmp_path / "out"
    export_model(loaded, ["onnx"], ["fp32"], out)
    raw = onnx.load(str(out / "onnx/fp32/model.onnx"))
    with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
        SymbolicShapeInference.infer_shapes(raw, auto_merge=False)
    fixed = onnx.load(str(preprocess(out / "onnx/fp32/model.onnx", tmp_path / "pre.onnx")))
    shapes = {v.name: v for v in fixed.graph.value_info}
    assert shapes, "pre-processed graph carries inferred shapes"


def test_manifest_records_what_parity_needs(tiny_models, tmp_path):
    path = tiny_models("distilbert", "question-answering")
    loaded = load_model(str(path))
    out = tmp_path / "out"
    export_model(loaded, ["onnx"], ["fp32"], out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["source"] == str(path.resolve())
    assert manifest["model"]["task"] == "question-answering"
    tok = manifest["tokenizer"]
    assert tok["lowercase"] is True and tok["cls_token_id"] == 101
    assert (out / tok["vocab"]).read_text().splitlines()[101] == "[CLS]"
    for artifact in manifest["artifacts"]:
        assert len(artifact["sha256"]) == 64


def test_large_models_use_external_data(tiny_models, tmp_path, monkeypatch):
    """Above the protobuf limit weights go to model.onnx.data (threshold lowered so a tiny model crosses it)."""
    import pocketbert.formats.onnx.export as onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 10_000)
    loaded = load_model(str(tiny_models("distilbert", "feature-extraction")))
    out = tmp_path / "out"
    manifest = export_model(loaded, ["onnx"], ["fp32"], out)
    artifact = manifest["artifacts"][0]
    assert artifact["files"] == ["onnx/fp32/model.onnx", "onnx/fp32/model.onnx.data"]
    graph, weights = (out / "onnx/fp32/model.onnx").stat().st_size, (out / "onnx/fp32/model.onnx.data").stat().st_size
    assert graph < weights and weights > 1_000_000
    onnx.checker.check_model(str(out / "onnx/fp32/model.onnx"))
    assert check_parity(out, loaded=loaded).passed


@pytest.mark.parametrize("arch", ARCHS)
def test_ort_fusions_apply_to_dynamo_exports(tiny_models, tmp_path, arch):
    """With --onnx-fusion every attention block fuses (the split-Unsqueeze pass and the √d division make ORT's
    pattern match) and the fused int8 graph still passes parity."""
    loaded = load_model(str(tiny_models(arch, "question-answering")))
    out = tmp_path / "out"
    manifest = export_model(loaded, ["onnx"], ["int8"], out, ExportSettings(onnx_fusion=True))
    int8 = manifest["artifacts"][0]
    assert int8["scheme"] == "dynamic-per-channel-fused"
    assert int8["metadata"]["ort_fusions"]["Attention"] == 2  # one per layer
    ops = {n.op_type for n in onnx.load(str(out / int8["path"])).graph.node}
    assert "QAttention" in ops
    assert check_parity(out, loaded=loaded).passed
