"""ExecuTorch through the format seam: export, manifest, parity, budget, bench planning and the Android bundle,
driven by the CLI on a tiny model (the lowering itself is tested in ``tests/test_executorch.py``).

The OUT is the one ``tests/test_executorch.py`` diagnoses (:func:`tests.test_executorch.shared_et_out`): one
export per session, ExecuTorch and ONNX side by side, so the three ExecuTorch lowerings (fp32, the budget's int8
trial, int8) happen once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("executorch")

from pocketbert.bundle.bundler import BUNDLE_DIR, bundle  # noqa: E402
from pocketbert.cli import main  # noqa: E402
from pocketbert.core.artifact import read_manifest  # noqa: E402
from pocketbert.runtime_bench.bench import _static_limits, plan_specs  # noqa: E402
from tests.test_executorch import shared_et_out  # noqa: E402

APPS = Path(__file__).resolve().parents[1] / "apps_sample"


@pytest.fixture(scope="module")
def et_out(tmp_path_factory) -> Path:
    """The one-layer DistilBERT classifier exported as executorch and onnx, fp32 and int8 (budgeted), buckets 8
    and 16; shared, so copy it before writing into it."""
    return shared_et_out(tmp_path_factory)


def test_export_writes_dynamic_methods_and_what_an_app_needs(et_out):
    manifest = read_manifest(et_out)
    artifacts = {a["name"]: a for a in manifest["artifacts"]}
    assert sorted(artifacts) == ["executorch-fp32", "executorch-int8", "onnx-fp32", "onnx-int8"]
    fp32, int8 = artifacts["executorch-fp32"], artifacts["executorch-int8"]
    assert int8["path"] == "executorch/int8/model.pte" and int8["scheme"] == "dynamic-per-channel"
    assert fp32["metadata"]["methods"] == {"dynamic": "forward"} and fp32["sequence_buckets"] is None
    assert fp32["metadata"]["max_length"] == 16 and fp32["metadata"]["delegate"] == "xnnpack"
    assert [i["shape"] for i in fp32["inputs"]] == [[1, "sequence"]] * 2 and fp32["inputs"][0]["dtype"] == "int64"
    assert [o["name"] for o in fp32["outputs"]] == ["logits"]
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert int8["metadata"]["mixed_precision"]["met"] and manifest["settings"]["executorch_shapes"] == "dynamic"
    from pocketbert.formats.executorch.runner import read_metadata

    embedded = read_metadata(et_out / int8["path"])
    assert embedded["task"] == "sequence-classification" and embedded["precision"] == "int8"
    assert embedded["labels"] == manifest["model"]["labels"]


def test_parity_passes_and_the_bench_plans_it_with_its_bound(et_out, capsys):
    assert main(["parity", str(et_out)]) == 0
    text = capsys.readouterr().out
    assert "executorch-fp32" in text and "executorch-int8" in text
    manifest = read_manifest(et_out)
    specs = {s.name: s for s in plan_specs(manifest, et_out, "random:bert-base-uncased")}
    assert specs["executorch-int8"].runtime == "executorch" and specs["executorch-int8"].format == "executorch"
    assert _static_limits(manifest)["executorch-int8"] == (16, "longer than the bound of its sequence axis (16)")


def test_android_bundle_takes_executorch_when_asked_and_tflite_first_otherwise(et_out, tmp_path):
    android = tmp_path / "android"
    shutil.copytree(APPS / "android", android, ignore=shutil.ignore_patterns("node_modules", "build", BUNDLE_DIR))
    (result,) = bundle(et_out, android=android)
    assert result.artifact == "executorch-int8"
    bundled = json.loads((android / "app/src/main/assets" / BUNDLE_DIR / "manifest.json").read_text())
    assert bundled["artifacts"][0]["metadata"]["methods"] == {"dynamic": "forward"}
