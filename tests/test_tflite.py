"""TFLite (LiteRT) export, int8 and parity on tiny DistilBERT and BERT models, through the real loading path.

Buckets are small (16, 32, 64) so conversions stay fast; the built-in parity texts include short texts and texts
longer than 64 tokens (truncated by the feed builder), so every bucket runs during parity.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from pocketbert.core.artifact import Artifact, ExportSettings, read_manifest
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.formats import runner_for as make_runner
from pocketbert.formats.tflite.export import read_metadata
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from pocketbert.parity.data import BUILTIN_TEXTS
from pocketbert.tasks import output_specs
from pocketbert.wrapper import DeploymentModel
from tests.test_integrity import reseal
from tests.tiny import ARCHS, TASKS

BUCKETS = [16, 32, 64]
SETTINGS = ExportSettings(max_length=64, sequence_buckets=BUCKETS)
# Per-task tests use two buckets: conversion time grows with the signature count, and two already make parity
# run both (the built-in texts have short ones and ones truncated at 32 tokens).
FAST_BUCKETS = [16, 32]
FAST = ExportSettings(max_length=32, sequence_buckets=FAST_BUCKETS)


def _settings(**overrides) -> ExportSettings:
    return ExportSettings(**{**SETTINGS.to_dict(), **overrides})


@pytest.fixture(scope="module")
def bert_out(tiny_models, tmp_path_factory):
    """A tiny BERT feature extractor exported to TFLite fp32 and int8 (dynamic), shared by several tests."""
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    out = tmp_path_factory.mktemp("tflite") / "out"
    export_model(loaded, ["tflite"], ["fp32", "int8"], out, SETTINGS)
    return loaded, out


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def _weight_types(path, op_name: str) -> set[str]:
    """Element types of the constant operand (the weight) of every ``op_name`` op, over all signatures."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    types = set()
    for graph in model.subgraphs:
        for op in graph.operators:
            if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == op_name:
                weight = graph.tensors[op.inputs[1]]  # FC: (input, weight, bias); EMBEDDING_LOOKUP: (ids, table)
                types.add(flatbuffer_utils.type_to_name(weight.type))
    assert types, f"no {op_name} op"
    return types


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_export_fp32_int8_dynamic_and_parity(tiny_models, tmp_path, arch, task):
    loaded = load_model(str(tiny_models(arch, task)))
    out = tmp_path / "out"
    manifest = export_model(loaded, ["tflite"], ["fp32", "int8"], out, FAST)
    assert [a["name"] for a in manifest["artifacts"]] == ["tflite-fp32", "tflite-int8"]
    outputs = [spec.name for spec in output_specs(loaded.task)]
    for artifact in manifest["artifacts"]:
        assert artifact["path"] == f"tflite/{artifact['precision']}/model.tflite"
        assert artifact["sequence_buckets"] == FAST_BUCKETS
        assert [i["name"] for i in artifact["inputs"]] == ["input_ids", "attention_mask"]
        assert {i["dtype"] for i in artifact["inputs"]} == {"int32"}
        signatures = _interpreter(out / artifact["path"]).get_signature_list()
        assert sorted(signatures) == sorted(f"seq_{b}" for b in FAST_BUCKETS)
        for sig in signatures.values():
            assert sorted(sig["inputs"]) == ["attention_mask", "input_ids"]
            assert sorted(sig["outputs"]) == sorted(outputs)
    int8 = manifest["artifacts"][1]
    assert int8["scheme"] == "dynamic-per-channel"
    assert "FULLY_CONNECTED" in int8["metadata"]["int8_ops"]
    int8_path = out / int8["path"]
    assert _weight_types(int8_path, "FULLY_CONNECTED") == {"INT8"}
    assert _weight_types(int8_path, "EMBEDDING_LOOKUP") == {"INT8"}
    assert _weight_types(out / "tflite/fp32/model.tflite", "FULLY_CONNECTED") == {"FLOAT32"}
    report = check_parity(out, loaded=loaded)
    assert report.passed, [(a.name, a.failures, a.error) for a in report.artifacts]


@pytest.mark.parametrize(("arch", "task"), [("distilbert", "sequence-classification"), ("bert", "question-answering")])
def test_static_int8_from_calibration_file_passes_parity(tiny_models, tmp_path, arch, task):
    loaded = load_model(str(tiny_models(arch, task)))
    texts = tmp_path / "calib.txt"
    lines = [t for t in BUILTIN_TEXTS if t.strip()][::2]  # half the parity texts: calibration from a user file
    texts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    settings = ExportSettings(**{**FAST.to_dict(), "int8_scheme": "static", "calibration_file": str(texts)})
    export_model(loaded, ["tflite"], ["int8"], out, settings)
    artifact = read_manifest(out)["artifacts"][0]
    assert artifact["name"] == "tflite-int8" and artifact["scheme"] == "static-per-channel"
    meta = artifact["metadata"]
    assert meta["calibration_texts"] == len(lines)
    assert {"FULLY_CONNECTED", "EMBEDDING_LOOKUP"} <= set(meta["int8_ops"])
    # softmax and layer norm stay float; so do the FFN down-projections and the task head (float FULLY_CONNECTED)
    assert {"SOFTMAX", "RSQRT", "FULLY_CONNECTED"} <= set(meta["float_ops"])
    details = _interpreter(out / artifact["path"]).get_tensor_details()
    assert any(d["dtype"] == np.int8 and d["quantization"][0] > 0 for d in details), "no int8 activations"
    report = check_parity(out, loaded=loaded)
    assert report.passed, [(a.name, a.failures, a.error) for a in report.artifacts]


def test_runner_picks_smallest_bucket_that_fits(bert_out):
    loaded, out = bert_out
    artifact = Artifact.from_dict(read_manifest(out)["artifacts"][0])
    short = "Hi!"
    long = " ".join(["the quick brown fox jumps over the lazy dog"] * 5)  # ~47 tokens: fits 64, not 32
    wrapper = DeploymentModel(loaded.model, loaded.task).eval()
    with make_runner(artifact, out, threads=1) as runner:
        for text, bucket in [(short, 16), (long, 64)]:
            enc = loaded.tokenizer([text], return_tensors="np")
            n = enc["input_ids"].shape[1]
            assert bucket // 2 < n <= bucket or bucket == 16
            runner.used_buckets.clear()
            got = runner.infer({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
            assert runner.used_buckets == [bucket]
            with torch.no_grad():
                hidden, embedding = wrapper(torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"]))
            np.testing.assert_allclose(got["last_hidden_state"], hidden.numpy(), atol=1e-4)
            np.testing.assert_allclose(got["embedding"], embedding.numpy(), atol=1e-5)


def test_runner_refuses_text_longer_than_largest_bucket(bert_out):
    _, out = bert_out
    artifact = Artifact.from_dict(read_manifest(out)["artifacts"][0])
    feed = {"input_ids": np.full((1, 65), 1000, np.int64), "attention_mask": np.ones((1, 65), np.int64)}
    with make_runner(artifact, out) as runner, pytest.raises(PocketbertError, match="longer than the largest bucket"):
        runner.infer(feed)


def test_flatbuffer_carries_app_metadata(bert_out):
    loaded, out = bert_out
    for artifact in read_manifest(out)["artifacts"]:
        meta = read_metadata(out / artifact["path"])
        assert meta["task"] == "feature-extraction" and meta["precision"] == artifact["precision"]
        assert meta["inputs"] == ["input_ids", "attention_mask"]
        assert meta["outputs"] == ["last_hidden_state", "embedding"]
        assert meta["sequence_buckets"] == BUCKETS and meta["signatures"]["64"] == "seq_64"
        assert meta["scheme"] == artifact["scheme"]


def _corrupt_fully_connected_weight(path) -> str:
    """Negate the weight buffer of the first FULLY_CONNECTED op in place (same size, still loadable)."""
    from ai_edge_litert.tools import flatbuffer_utils

    data = bytearray(path.read_bytes())
    model = flatbuffer_utils.convert_bytearray_to_object(data)
    graph = model.subgraphs[0]
    for op in graph.operators:
        if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "FULLY_CONNECTED":
            tensor = graph.tensors[op.inputs[1]]
            buffer = model.buffers[tensor.buffer]
            if buffer.data is not None:  # stored inside the flatbuffer: find its bytes
                raw = bytes(np.asarray(buffer.data, dtype=np.uint8))
                assert raw and data.count(raw) == 1, "weight bytes not found exactly once"
                start = data.find(raw)
            else:  # stored after the flatbuffer at an offset (ai-edge-quantizer output)
                start, raw = buffer.offset, bytes(data[buffer.offset : buffer.offset + buffer.size])
            dtype = np.int8 if tensor.type == 9 else np.float32
            flipped = (-np.frombuffer(raw, dtype=dtype).astype(np.float32)).clip(-127, None).astype(dtype)
            data[start : start + len(raw)] = flipped.tobytes()
            path.write_bytes(bytes(data))
            return tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
    raise AssertionError("no FULLY_CONNECTED op")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_parity_catches_a_corrupted_weight_buffer(bert_out, tmp_path, precision):
    loaded, out = bert_out
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    name = _corrupt_fully_connected_weight(copy / f"tflite/{precision}/model.tflite")
    with pytest.raises(PocketbertError, match="does not match its sha256"):
        check_parity(copy, loaded=loaded, only=[f"tflite-{precision}"])
    reseal(copy)  # a wrong export, not a damaged file: the checksums match, the numbers must not
    report = check_parity(copy, loaded=loaded, only=[f"tflite-{precision}"])
    assert not report.passed, f"negating {name} went unnoticed"
    assert report.artifacts[0].error is None, "the corrupted file must still run: parity, not loading, catches it"


def test_bucket_longer_than_max_positions_is_refused(bert_out, tmp_path):
    loaded, _ = bert_out
    out = tmp_path / "out"
    with pytest.raises(PocketbertError, match="longer than the model's max positions"):
        export_model(loaded, ["tflite"], ["fp32"], out, _settings(max_length=512, sequence_buckets=[64, 512]))
    assert not out.exists()


@pytest.mark.parametrize("content", ["", "\n  \n", None])
def test_bad_calibration_file_fails_in_one_line_and_writes_nothing(bert_out, tmp_path, content):
    loaded, _ = bert_out
    calib = tmp_path / "calib.txt"
    if content is not None:
        calib.write_text(content)
    out = tmp_path / "out"
    settings = _settings(int8_scheme="static", calibration_file=str(calib))
    with pytest.raises(PocketbertError, match="calibration file") as info:
        export_model(loaded, ["tflite"], ["int8"], out, settings)
    assert "\n" not in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".out.staging-*"))


class _DataDependent(torch.nn.Module):
    """Branches on a tensor value: torch.export cannot trace it."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        if input_ids.sum() > 0:
            return {"embedding": attention_mask.float()}
        return {"embedding": -attention_mask.float()}


class _Svd(torch.nn.Module):
    """Uses an op (SVD) litert-torch has no lowering for."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (input_ids[:, :4, None] * attention_mask[:, None, :4]).float()
        return {"embedding": torch.linalg.svd(x)[1]}


@pytest.mark.parametrize(
    ("module", "message"),
    [(_DataDependent, "torch.export could not trace the model for TFLite"), (_Svd, "LiteRT conversion failed")],
)
def test_unconvertible_model_fails_in_one_line_and_writes_nothing(bert_out, tmp_path, monkeypatch, module, message):
    from pocketbert.formats.tflite import export as tflite_export

    loaded, _ = bert_out
    monkeypatch.setattr(tflite_export.NamedOutputs, "wrap", staticmethod(lambda wrapper: module().eval()))
    out = tmp_path / "out"
    with pytest.raises(PocketbertError, match=message) as info:
        export_model(loaded, ["tflite"], ["fp32"], out, _settings(sequence_buckets=[16], max_length=16))
    assert "\n" not in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".out.staging-*"))


def test_cli_exports_tflite_and_parity_covers_it(tiny_models, tmp_path, capsys):
    from pocketbert.cli import main

    model = str(tiny_models("distilbert", "token-classification"))
    out = tmp_path / "out"
    argv = ["export", model, "--format", "tflite", "--precision", "fp32", "--buckets", "16,32", "-o", str(out)]
    assert main(argv) == 0
    assert (out / "tflite/fp32/model.tflite").is_file()
    assert main(["parity", str(out)]) == 0
    assert "tflite-fp32" in capsys.readouterr().out
