"""ExecuTorch through the format seam: export, manifest, parity, budget, bench planning and the Android bundle,
driven by the CLI on a tiny model (the lowering itself is tested in ``tests/test_executorch.py``)."""

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

APPS = Path(__file__).resolve().parents[1] / "apps_sample"


@pytest.fixture(scope="module")
def et_out(tiny_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("et") / "out"
    model = str(tiny_models("distilbert", "sequence-classification"))
    argv = ["export", model, "--format", "executorch", "--precision", "fp32,int8", "--buckets", "8,16", "-o", str(out)]
    assert main([*argv, "--budget", "agreement>=0.5"]) == 0
    return out


def test_export_writes_dynamic_methods_and_what_an_app_needs(et_out):
    manifest = read_manifest(et_out)
    fp32, int8 = manifest["artifacts"]
    assert (fp32["name"], int8["name"]) == ("executorch-fp32", "executorch-int8")
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
