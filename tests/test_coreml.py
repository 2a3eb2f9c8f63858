"""Core ML export (fp16, int8 W8, W8A8) and Linux parity through the MIL reference runner, on tiny models."""

from __future__ import annotations

import json
import shutil

import coremltools as ct
import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.core.artifact import ExportSettings, manifest_artifacts, read_manifest
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.formats import runner_for
from pocketbert.formats.coreml.mil.package import BLOB_HEADER, load_program
from pocketbert.formats.coreml.runner import CoreMLRunner, MilRunner, coreml_available, make_runner
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from tests.test_integrity import reseal
from tests.tiny import ARCHS, TASKS

SETTINGS = ExportSettings(sequence_buckets=[16, 32, 64], max_length=64)
WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"


def _failures(report):
    return [(a.name, a.failures, a.error) for a in report.artifacts if not a.passed]


@pytest.fixture(scope="module")
def exported(tiny_models, tmp_path_factory):
    """``exported(arch, task) -> (loaded, out)``: fp16 and int8 packages, built once per module."""
    cache = {}

    def get(arch, task):
        if (arch, task) not in cache:
            loaded = load_model(str(tiny_models(arch, task)))
            out = tmp_path_factory.mktemp(f"coreml-{arch}-{task}") / "out"
            export_model(loaded, ["coreml"], ["fp16", "int8"], out, SETTINGS)
            cache[(arch, task)] = (loaded, out)
        return cache[(arch, task)]

    return get


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_export_fp16_int8_and_mil_parity(exported, arch, task, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    loaded, out = exported(arch, task)
    manifest = read_manifest(out)
    artifacts = {a.name: a for a in manifest_artifacts(manifest)}
    assert list(artifacts) == ["coreml-fp16", "coreml-int8"]
    for artifact in artifacts.values():
        assert artifact.path.endswith(".mlpackage") and (out / artifact.path / WEIGHTS).is_file()
        # one input by default: the graph derives the mask from the pad id, so iOS16 can take enumerated shapes
        assert [(i.name, i.dtype) for i in artifact.inputs] == [("input_ids", "int32")]
        assert artifact.metadata["shapes"] == {"kind": "enumerated", "batch": [1, 1], "sequence": [16, 32, 64]}
        assert artifact.sequence_buckets == [16, 32, 64]
        assert artifact.metadata["pad_token_id"] == loaded.tokenizer.pad_token_id == 0
        assert artifact.metadata["deployment_target"] == "iOS16"
        program = load_program(out / artifact.path)
        assert set(program.inputs.values()) == {"int32"}
        assert program.outputs == [o.name for o in artifact.outputs]
    fp16_ops = load_program(out / artifacts["coreml-fp16"].path)
    assert any(dtype == "fp16" for op in fp16_ops.ops for _, dtype in op.outputs), "fp16 compute"
    int8_ops = load_program(out / artifacts["coreml-int8"].path).op_types()
    assert "constexpr_affine_dequantize" in int8_ops
    assert artifacts["coreml-int8"].scheme == "w8-per-channel"
    report = check_parity(out, loaded=loaded)
    assert report.passed, _failures(report)


def test_metadata_descriptions_and_labels(exported):
    loaded, out = exported("distilbert", "sequence-classification")
    spec = ct.utils.load_spec(str(out / "coreml/int8/model.mlpackage"))
    meta = spec.description.metadata
    assert meta.author == "pocketbert" and meta.versionString and meta.shortDescription and meta.license
    user = dict(meta.userDefined)
    assert user["task"] == "sequence-classification" and user["precision"] == "int8"
    assert json.loads(user["labels"]) == loaded.labels == ["label_a", "label_b", "label_c"]
    descriptions = {f.name: f.shortDescription for f in list(spec.description.input) + list(spec.description.output)}
    assert set(descriptions) == {"input_ids", "logits"}
    assert all(descriptions.values()) and "label_b" in descriptions["logits"]
    assert "pad id 0" in descriptions["input_ids"]
    shapes = spec.description.input[0].type.multiArrayType.enumeratedShapes.shapes
    assert sorted(tuple(s.shape) for s in shapes) == [(1, 16), (1, 32), (1, 64)]


def test_flexible_batch_and_sequence_in_the_mil_runner(exported):
    loaded, out = exported("bert", "feature-extraction")
    with MilRunner(out / "coreml/fp16/model.mlpackage", buckets=[16, 32, 64], task=loaded.task) as runner:
        for batch, seq in [(1, 3), (3, 7), (2, 64)]:
            feed = {"input_ids": np.full((batch, seq), 1000), "attention_mask": np.ones((batch, seq), np.int64)}
            result = runner.infer(feed)
            assert result["last_hidden_state"].shape == (batch, seq, 32)
            assert result["embedding"].dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(result["embedding"], axis=1), 1.0, atol=2e-3)


def _blobs(path):
    """(header offset, data offset, size) of every weight blob in a weight file, largest first."""
    data = path.read_bytes()
    found, offset = [], 64
    while offset + BLOB_HEADER.size <= len(data):
        sentinel, _, size, start = BLOB_HEADER.unpack_from(data, offset)
        if sentinel != 0xDEADBEEF:
            break
        found.append((offset, start, size))
        offset = (start + size + 63) // 64 * 64
    return sorted(found, key=lambda b: -b[2])


def test_a_corrupted_weight_blob_fails_parity(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    loaded, out = exported("bert", "sequence-classification")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = copy / "coreml/fp16" / "model.mlpackage" / WEIGHTS
    blobs = _blobs(weights)
    assert len(blobs) > 10
    data = bytearray(weights.read_bytes())
    _, start, size = blobs[1]  # the largest after the word embeddings (which mostly hold unused rows)
    values = np.frombuffer(bytes(data[start : start + size]), dtype=np.float16)
    data[start : start + size] = (values * np.float16(-1.5)).tobytes()
    weights.write_bytes(bytes(data))
    with pytest.raises(PocketbertError, match="does not match its sha256"):
        check_parity(copy, loaded=loaded, only=["coreml-fp16"])
    reseal(copy)  # a wrong export, not a damaged file: the checksums match, the numbers must not
    report = check_parity(copy, loaded=loaded, only=["coreml-fp16"])
    assert not report.passed, "altering the weight file went unnoticed: the runner did not read the package"
    assert report.artifacts[0].error is None and report.artifacts[0].failures


def test_truncated_or_missing_weights_are_one_line_errors(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    _, out = exported("distilbert", "feature-extraction")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    artifact = {a.name: a for a in manifest_artifacts(read_manifest(copy))}["coreml-int8"]
    weights = copy / artifact.path / WEIGHTS
    size = weights.stat().st_size
    with weights.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(PocketbertError, match="is truncated") as err:
        runner_for(artifact, copy).load()
    assert "\n" not in str(err.value)
    weights.unlink()
    with pytest.raises(PocketbertError, match="missing its weights") as err:
        runner_for(artifact, copy).load()
    assert "\n" not in str(err.value)


def test_w8a8_and_iOS18_blockwise_int8_with_size_ratio(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    loaded = load_model(str(tiny_models("distilbert", "token-classification")))
    out = tmp_path / "out"
    settings = ExportSettings(sequence_buckets=[16, 32, 64], max_length=64, coreml_target="iOS18")
    manifest = export_model(loaded, ["coreml"], ["fp32", "int8", "int8-w8a8"], out, settings)
    artifacts = {a["name"]: a for a in manifest["artifacts"]}
    assert artifacts["coreml-int8-w8a8"]["scheme"] == "w8a8-per-channel"
    assert artifacts["coreml-int8-w8a8"]["metadata"]["calibration_texts"] > 10
    meta = artifacts["coreml-int8-w8a8"]["metadata"]
    assert "the 2 feed-forward down-projection inputs stay fp16" in meta["float_activations"]
    for artifact in artifacts.values():  # iOS18: enumerated (1, bucket) shapes, the Neural Engine's form
        assert artifact["sequence_buckets"] == [16, 32, 64]
        assert artifact["metadata"]["shapes"] == {"kind": "enumerated", "batch": [1, 1], "sequence": [16, 32, 64]}
    with MilRunner(out / artifacts["coreml-fp32"]["path"]) as plain:  # no buckets: feeds run as given
        with pytest.raises(PocketbertError, match=r"shape \(1, 20\) does not fit"):
            plain.infer({"input_ids": np.ones((1, 20), np.int64), "attention_mask": np.ones((1, 20), np.int64)})
    ratio = artifacts["coreml-fp32"]["size_bytes"] / artifacts["coreml-int8"]["size_bytes"]
    assert ratio >= 3.5, ratio
    int8_ops = load_program(out / artifacts["coreml-int8"]["path"]).op_types()
    assert "constexpr_blockwise_shift_scale" in int8_ops and "constexpr_affine_dequantize" not in int8_ops
    w8a8 = load_program(out / artifacts["coreml-int8-w8a8"]["path"])
    assert {"quantize", "dequantize", "constexpr_blockwise_shift_scale"} <= w8a8.op_types()
    made_by = {name: op.type for op in w8a8.ops for name, _ in op.outputs}
    linear_inputs = [made_by.get(op.inputs["x"].name) for op in w8a8.ops if op.type == "linear"]
    assert linear_inputs.count("gelu") == 2, "feed-forward down-projections read the fp16 GELU output"
    assert set(linear_inputs) == {"gelu", "dequantize"}, "every other linear reads int8 activations"
    adds = [op for op in w8a8.ops if op.type == "add"]
    add_inputs = [made_by.get(getattr(op.inputs[k], "name", None)) for op in adds for k in ("x", "y")]
    assert "dequantize" not in add_inputs, "adds (residuals, attention mask) stay fp16"
    report = check_parity(out, loaded=loaded)
    assert report.passed, _failures(report)


def test_w8a8_on_iOS16_is_refused_and_writes_nothing(tiny_models, tmp_path, capsys):
    model = str(tiny_models("bert", "sequence-classification"))
    out = tmp_path / "out"
    code = main(["export", model, "--format", "coreml", "--precision", "int8-w8a8", "-o", str(out), "--buckets", "16"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and not out.exists()
    assert len(errors) == 1 and "needs deployment target iOS17" in errors[0]
    assert not [p for p in tmp_path.iterdir() if p.name != "out"], "no staging left behind"
    loaded = load_model(model)
    with pytest.raises(PocketbertError, match="unknown Core ML deployment target 'iOS15'"):
        export_model(
            loaded,
            ["coreml"],
            ["fp16"],
            out,
            ExportSettings(max_length=16, sequence_buckets=[16], coreml_target="iOS15"),
        )
    assert not out.exists()


def test_make_runner_honours_the_environment(exported, monkeypatch):
    _, out = exported("bert", "feature-extraction")
    artifact = manifest_artifacts(read_manifest(out))[0]
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    runner = make_runner(artifact, out)
    assert isinstance(runner, MilRunner) and runner.timing_meaningful is False
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "tpu")
    with pytest.raises(PocketbertError, match="use mil or coreml"):
        make_runner(artifact, out)
    if not coreml_available():
        monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "coreml")
        with pytest.raises(PocketbertError, match="needs macOS"):
            make_runner(artifact, out)


@pytest.mark.skipif(not coreml_available(), reason="Core ML runs only on macOS; the MIL runner stands in elsewhere")
def test_mil_runner_matches_core_ml_on_macos(exported):
    loaded, out = exported("distilbert", "feature-extraction")
    feeds = [
        {"input_ids": np.array([[101, 7592, 2088, 102]]), "attention_mask": np.ones((1, 4), np.int64)},
        {"input_ids": np.array([[101, 2023, 102, 0, 0]] * 2), "attention_mask": np.array([[1, 1, 1, 0, 0]] * 2)},
    ]
    shapes = {"buckets": [16, 32, 64], "task": loaded.task}
    for precision in ("fp16", "int8"):
        path = out / f"coreml/{precision}/model.mlpackage"
        with MilRunner(path, **shapes) as mil, CoreMLRunner(path, **shapes) as coreml:
            for feed in feeds:
                a, b = mil.infer(feed), coreml.infer(feed)
                for name in a:
                    cos = np.dot(a[name].ravel(), b[name].ravel()) / (np.linalg.norm(a[name]) * np.linalg.norm(b[name]))
                    assert cos > 0.999, (precision, name, cos)


def test_cli_parity_covers_coreml_packages(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    _, out = exported("distilbert", "question-answering")
    report = tmp_path / "report"
    assert main(["parity", str(out), "--report", str(report)]) == 0
    data = json.loads((report / "parity.json").read_text())
    assert {a["name"] for a in data["artifacts"]} == {"coreml-fp16", "coreml-int8"} and data["passed"] is True
