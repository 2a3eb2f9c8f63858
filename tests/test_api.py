"""The public Python API: ``pocketbert.export``, ``pocketbert.check_parity``, ``pocketbert.bench``."""

from __future__ import annotations

import pytest

import pocketbert
from pocketbert.errors import PocketbertError
from pocketbert.loading import load_model
from tests.tiny import save_tiny


def test_export_check_parity_and_bench_from_python(tiny_models, tmp_path):
    import pocketbert.exporting.pipeline  # noqa: F401 - the subpackage must not shadow the function

    out = tmp_path / "out"
    model = str(tiny_models("bert", "feature-extraction"))
    manifest = pocketbert.export(model, out, formats=["onnx"], precisions=["fp32", "int8"], buckets=[16, 32])
    assert [a["name"] for a in manifest["artifacts"]] == ["onnx-fp32", "onnx-int8"]
    assert manifest["max_length"] == 32 and manifest["settings"]["onnx_int8_weights"] == "u8"
    report = pocketbert.check_parity(out)
    assert report.passed and [a.name for a in report.artifacts] == ["onnx-fp32", "onnx-int8"]
    baseline = save_tiny(tmp_path / "teacher", "bert", "feature-extraction", seed=1)
    results = pocketbert.bench(out, baseline=str(baseline), seqs=[16], repeats=2, threads=1, quick=True)
    assert {r["name"] for r in results["runners"]} >= {"baseline", "onnx-fp32", "onnx-int8"}


def test_export_takes_a_loaded_model_and_format_options(tiny_models, tmp_path):
    loaded = load_model(str(tiny_models("distilbert", "sequence-classification")))
    manifest = pocketbert.export(loaded, tmp_path / "o", formats=["onnx"], precisions=["int8"], onnx_int8_weights="s8")
    assert manifest["artifacts"][0]["metadata"]["weights"]["recipe"] == "s8"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"coreml_targt": "iOS17"}, "unknown export option 'coreml_targt'; valid: int8_scheme"),
        ({"opset": 12}, "opset must be at least 17"),
        ({"buckets": [64, 32]}, "sequence buckets must be ascending"),
        ({"formats": ["onnx", "tensorrt"]}, "unknown format 'tensorrt'"),
    ],
)
def test_bad_options_are_refused_before_the_model_loads(tmp_path, options, message):
    with pytest.raises(PocketbertError, match=message):
        pocketbert.export("no/such-model-anywhere", tmp_path / "o", **options)
    assert not (tmp_path / "o").exists()
