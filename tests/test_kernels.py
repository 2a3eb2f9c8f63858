"""Kernel families: parity on the aarch64 kernels a phone runs and on x86 AVX2 kernels, and the facts recorded."""

from __future__ import annotations

import json
import platform
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.core.artifact import ExportSettings, read_manifest
from pocketbert.core.facts import int8_kernel_class, process_facts, runtime_version
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.kernels import families, provision
from pocketbert.kernels.provision import setup_arm64
from pocketbert.loading import load_model
from pocketbert.parity.check import check_kernels, check_parity
from pocketbert.report.document import to_markdown
from pocketbert.report.write import _kernel_matrix
from pocketbert.runtime_bench.roofline import add_roofline, encoder_macs, measure_gemm

FORMATS_ARTIFACTS = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")


@pytest.fixture(scope="session")
def arm64_env():
    """The aarch64 environment (built on first use, as 'pocketbert kernels setup' does; cached after)."""
    return setup_arm64(say=lambda _message: None)


@pytest.fixture(scope="module")
def distil_cls(tiny_models, tmp_path_factory):
    loaded = load_model(str(tiny_models("distilbert", "sequence-classification")))
    out = tmp_path_factory.mktemp("kernels") / "out"
    export_model(loaded, ["onnx", "tflite"], ["fp32", "int8"], out)
    return loaded, out


def test_arm64_parity_runs_onnx_and_tflite_in_the_aarch64_runtimes(distil_cls, arm64_env):
    loaded, out = distil_cls
    report = check_parity(out, loaded=loaded, kernels=["host", "arm64"])
    assert report.passed, [(a.label, a.error, [c.metric for c in a.failures]) for a in report.artifacts]
    verdicts = {(a.name, a.kernels): a for a in report.artifacts}
    assert set(verdicts) == {(name, family) for name in FORMATS_ARTIFACTS for family in ("host", "arm64")}
    for name in FORMATS_ARTIFACTS:
        host, arm = verdicts[(name, "host")], verdicts[(name, "arm64")]
        assert arm.label == f"{name}@arm64" and host.label == name
        assert arm.kernel_facts["isa"] == "aarch64" and arm.kernel_facts["execution"] == "emulated"
        assert arm.kernel_facts["int8_kernels"] == "dotprod" and "cortex-a76" in arm.kernel_facts["emulator"]
        runtime = arm.kernel_facts["runtime"]
        assert arm.kernel_facts["runtime_version"] == runtime_version(runtime) == host.kernel_facts["runtime_version"]
        assert host.kernel_facts["execution"] == "native" and host.kernel_facts["isa"] == platform.machine()
        for metric, value in host.metrics.items():
            if metric.endswith("cosine_min"):
                assert abs(arm.metrics[metric] - value) <= 0.003, (name, metric)


def test_a_saturating_int8_file_fails_on_avx2_kernels_while_the_shipped_recipe_passes(distil_cls, arm64_env, tmp_path):
    loaded, out = distil_cls
    assert read_manifest(out)["artifacts"][1]["metadata"]["weights"]["recipe"] == "u8"
    shipped = check_parity(out, loaded=loaded, only=["onnx-int8"], kernels=["host", "x86-avx2", "arm64"])
    assert shipped.passed, [(a.label, [(c.metric, c.value) for c in a.failures]) for a in shipped.artifacts]
    assert {a.kernel_facts["int8_kernels"] for a in shipped.artifacts if a.kernels == "x86-avx2"} == {"avx2-no-vnni"}

    saturating = tmp_path / "s8"  # int8 weights: u8 x s8 pairs summed in int16 saturate without VNNI
    export_model(loaded, ["onnx"], ["int8"], saturating, ExportSettings(onnx_int8_weights="s8"))
    assert read_manifest(saturating)["artifacts"][0]["metadata"]["weights"]["recipe"] == "s8"
    report = check_parity(saturating, loaded=loaded, only=["onnx-int8"], kernels=["x86-avx2", "arm64"])
    verdicts = {a.kernels: a for a in report.artifacts}
    assert not verdicts["x86-avx2"].passed
    assert [c.metric for c in verdicts["x86-avx2"].failures] == ["logits.cosine_min"]
    assert verdicts["arm64"].passed  # the same file is fine on a phone's kernels: the verdict is the kernels'


def test_cli_records_the_kernels_in_json_and_junit(distil_cls, arm64_env, tmp_path, capsys):
    _, out = distil_cls
    report_dir = tmp_path / "report"
    code = main(
        ["parity", str(out), "--artifact", "tflite-int8", "--kernels", "host,arm64", "--report", str(report_dir)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "tflite-int8@arm64" in printed and "kernels arm64: aarch64 cortex-a76 (dotprod), ai-edge-litert" in printed
    data = json.loads((report_dir / "parity.json").read_text())
    assert data["kernels"] == ["host", "arm64"]
    assert [a["label"] for a in data["artifacts"]] == ["tflite-int8", "tflite-int8@arm64"]
    assert data["artifacts"][1]["kernel_facts"]["isa"] == "aarch64"
    cases = ET.parse(report_dir / "junit.xml").getroot().findall("testcase")
    assert [c.get("name") for c in cases] == ["tflite-int8", "tflite-int8@arm64"]
    props = {p.get("name"): p.get("value") for p in cases[1].iter("property")}
    assert props["kernels.isa"] == "aarch64" and props["kernels.execution"] == "emulated"
    assert props["kernels.runtime"] == "ai-edge-litert"


def test_x86_avx2_runs_the_int8_artifacts_and_says_which_it_left_out(distil_cls, tmp_path, capsys):
    _, out = distil_cls
    report_dir = tmp_path / "report"
    assert main(["parity", str(out), "--kernels", "x86-avx2", "--report", str(report_dir)]) == 0
    printed = capsys.readouterr().out
    assert "not run on x86-avx2: onnx-fp32, tflite-fp32 (x86-avx2 runs int8 artifacts only" in printed
    data = json.loads((report_dir / "parity.json").read_text())
    assert [a["label"] for a in data["artifacts"]] == ["onnx-int8@x86-avx2", "tflite-int8@x86-avx2"]
    assert [(i["artifact"], i["family"]) for i in data["not_run"]] == [
        ("onnx-fp32", "x86-avx2"),
        ("tflite-fp32", "x86-avx2"),
    ]
    matrix = to_markdown(_kernel_matrix(data), report_dir)
    assert "| artifact | x86-avx2 |" in matrix and "| onnx-fp32 | not run (int8 only) |" in matrix
    assert "Not run on x86-avx2: onnx-fp32, tflite-fp32 (x86-avx2 runs int8 artifacts only" in matrix


def test_executorch_int8_runs_on_avx2_kernels_and_names_why_not_on_arm64(tiny_models, tmp_path, capsys):
    """The .pte runs in a qemu-x86_64 EPYC-Rome guest (XNNPACK's AVX2 kernels); the aarch64 guest has no ExecuTorch
    runtime, and the report says so instead of leaving the cell blank or claiming a pass."""
    loaded = load_model(str(tiny_models("bert", "sequence-classification")))
    out = tmp_path / "out"
    export_model(loaded, ["executorch"], ["int8"], out)
    report_dir = tmp_path / "report"
    assert main(["parity", str(out), "--kernels", "host,x86-avx2,arm64", "--report", str(report_dir)]) == 0
    printed = capsys.readouterr().out
    assert "not run on arm64: executorch-int8 (no aarch64 ExecuTorch runtime here: its Python bindings link " in printed
    data = json.loads((report_dir / "parity.json").read_text())
    verdicts = {a["label"]: a for a in data["artifacts"]}
    assert list(verdicts) == ["executorch-int8", "executorch-int8@x86-avx2"]
    avx2 = verdicts["executorch-int8@x86-avx2"]
    assert avx2["passed"]
    facts = avx2["kernel_facts"]
    assert (facts["isa"], facts["execution"], facts["int8_kernels"]) == ("x86_64", "emulated", "avx2-no-vnni")
    assert facts["runtime"] == "executorch" and "EPYC-Rome" in facts["emulator"]
    assert [(i["artifact"], i["family"], i["label"]) for i in data["not_run"]] == [
        ("executorch-int8", "arm64", "no aarch64 runtime")
    ]
    matrix = to_markdown(_kernel_matrix(data), report_dir)
    assert "| artifact | host | x86-avx2 | arm64 |" in matrix
    assert "| not run (no aarch64 runtime) |" in matrix.split("| executorch-int8 |")[1].splitlines()[0]


def test_a_family_that_cannot_run_is_one_line_before_any_model_loads(distil_cls, tmp_path, monkeypatch, capsys):
    _, out = distil_cls

    def no_model(*_args, **_kwargs):
        raise AssertionError("the reference model was loaded before the kernel families were checked")

    monkeypatch.setattr("pocketbert.parity.check.load_reference", no_model)
    monkeypatch.setenv("POCKETBERT_KERNELS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(families, "qemu_binary", lambda family: None)  # a machine without QEMU
    monkeypatch.setattr(provision.shutil, "which", lambda name: None)  # and without apt-get to install it
    assert main(["parity", str(out), "--kernels", "host,arm64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "kernel family arm64 cannot be set up here: qemu-aarch64-static is missing and this machine has no " in err
    assert not (tmp_path / "empty").exists()

    with pytest.raises(PocketbertError, match="needs qemu-x86_64-static .Debian package qemu-user-static."):
        check_kernels(["x86-avx2"], setup=False)

    assert main(["parity", str(out), "--kernels", "arm32"]) == 2
    assert "unknown kernel family 'arm32'; known: host, arm64, arm64-i8mm, x86-avx2" in capsys.readouterr().err
    with pytest.raises(PocketbertError, match="at least one family"):
        check_kernels([])


def test_parity_on_arm64_sets_up_its_environment_on_a_clean_machine(distil_cls, arm64_env, tmp_path, capsys):
    _, out = distil_cls
    fresh = tmp_path / "kernels"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POCKETBERT_KERNELS_DIR", str(fresh))
        assert main(["parity", str(out), "--kernels", "arm64", "--artifact", "onnx-int8"]) == 0
        built = provision.env_dir()
    assert built.parent == fresh and provision.is_ready(built)
    assert provision.environment_info(built)["versions"]["onnxruntime"] == runtime_version("onnxruntime")
    err = capsys.readouterr().err
    assert "kernels: downloading 18 Debian arm64 packages" in err and "kernels: arm64 environment ready" in err
    assert not [p for p in fresh.iterdir() if p.name.startswith(".")], "a staging directory was left behind"


def test_run_reports_an_artifact_by_kernel_family_matrix(tiny_models, arm64_env, tmp_path):
    out = tmp_path / "run"
    model = str(tiny_models("bert", "feature-extraction"))
    args = ["run", model, "-o", str(out), "--format", "onnx", "--precision", "int8", "--kernels", "host,arm64"]
    assert main([*args, "--no-bench", "--quiet"]) == 0
    manifest = read_manifest(out)
    parity = manifest["artifacts"][0]["parity"]
    assert parity["passed"] and set(parity["kernels"]) == {"host", "arm64"}
    assert parity["kernels"]["arm64"]["kernel_facts"]["isa"] == "aarch64"
    report = (out / "report" / "report.md").read_text()
    assert "## Parity by kernel family" in report
    assert "| artifact | host | arm64 |" in report and "| onnx-int8 | pass 0." in report
    assert "| arm64 | aarch64 | cortex-a76 | dotprod | onnxruntime" in report


def test_int8_kernel_classes_and_host_facts():
    assert int8_kernel_class("x86_64", ["AVX2", "AVX512F", "AVX512VNNI"]) == "vnni"
    assert int8_kernel_class("x86_64", ["AVX2", "AVX_VNNI"]) == "vnni"
    assert int8_kernel_class("x86_64", ["AVX2", "AVX512VNNI", "AMX_INT8"]) == "amx"
    assert int8_kernel_class("x86_64", ["AVX", "AVX2", "FMA3"]) == "avx2-no-vnni"
    assert int8_kernel_class("aarch64", ["ASIMD", "ASIMDDP"]) == "dotprod"
    assert int8_kernel_class("aarch64", ["ASIMD", "ASIMDDP", "i8mm"]) == "i8mm"
    assert int8_kernel_class("aarch64", ["ASIMD"]) == "neon"
    facts = process_facts("onnxruntime")
    assert facts["isa"] == platform.machine() and facts["runtime_version"] == runtime_version("onnxruntime")
    assert facts["int8_kernels"] in ("amx", "vnni", "avx2-no-vnni", "sse", "dotprod", "i8mm", "neon")


def test_roofline_counts_multiply_adds_and_shares_of_the_measured_peak():
    # BERT-base at 128 tokens: 12 x (4*128*768^2 + 2*128*768*3072 + 2*128^2*768) multiply-adds
    assert encoder_macs(12, 768, 3072, 128) == 12 * (301_989_888 + 603_979_776 + 25_165_824)
    gemm = measure_gemm(1, rounds=2, per_round=1)
    assert gemm["shape"] == [128, 768, 3072] and gemm["fp32"]["gmacs"] > 0 and gemm["int8"]["gmacs"] > 0
    assert gemm["int8_u8"]["gmacs"] > 0 and gemm["int8_u8_speedup"] > 0
    assert gemm["kernel_facts"]["runtime"] == "onnxruntime"
    peaks = {"fp32": {"gmacs": 100.0}, "int8": {"gmacs": 400.0}}
    shape = {"layers": 2, "hidden": 32, "intermediate": 64}
    report = {
        "settings": {"batch": 1},
        "runners": [
            {"name": "pytorch-fp32", "role": "student", "precision": "fp32", "encoder": shape},
            {"name": "onnx-int8", "role": "student", "precision": "int8", "encoder": None},
        ],
        "cells": [
            {"runner": "pytorch-fp32", "seq": 16, "status": "ok", "median_ms": 1.0},
            {"runner": "onnx-int8", "seq": 16, "status": "ok", "median_ms": 0.5},
            {"runner": "onnx-int8", "seq": 32, "status": "failed", "median_ms": None},
        ],
    }
    add_roofline(report, peaks)
    macs = encoder_macs(2, 32, 64, 16)
    fp32, int8, failed = report["cells"]
    assert fp32["macs"] == int8["macs"] == macs and "macs" not in failed
    assert fp32["fraction_of_peak"] == pytest.approx(macs / 1e-3 / 1e9 / 100.0, rel=1e-3)
    assert int8["fraction_of_peak"] == pytest.approx(macs / 0.5e-3 / 1e9 / 400.0, rel=1e-3)
    assert report["host_gemm"] is peaks
    assert np.isfinite(int8["achieved_gmacs"])
