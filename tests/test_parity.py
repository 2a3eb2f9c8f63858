"""The parity checker: metrics, gates, reports, and proof that it catches a corrupted artifact."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pocketbert.cli import main
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from pocketbert.parity.comparator import Comparator
from pocketbert.parity.gates import Gate, expand, gates_for, load_gate_file
from pocketbert.parity.metrics import best_span, compare_outputs
from pocketbert.tasks import Task


@pytest.fixture(scope="module")
def onnx_out(tiny_models, tmp_path_factory):
    loaded = load_model(str(tiny_models("bert", "sequence-classification")))
    out = tmp_path_factory.mktemp("parity") / "out"
    export_model(loaded, ["onnx"], ["fp32", "int8"], out)
    return loaded, out


def _corrupt_largest_weight(path, factor):
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == 1 else 0)
    array = numpy_helper.to_array(init) * factor
    init.CopyFrom(numpy_helper.from_array(array.astype(np.float32), init.name))
    onnx.save(model, str(path))
    return init.name


def test_parity_catches_a_scaled_weight(onnx_out, tmp_path):
    import shutil

    from tests.test_integrity import reseal

    loaded, out = onnx_out

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    name = _corrupt_largest_weight(copy / "onnx/fp32/model.onnx", 1.5)
    reseal(copy)  # a wrong export, not a damaged file: the checksums match, the numbers must not
    report = check_parity(copy, loaded=loaded, only=["onnx-fp32"])
    assert not report.passed, f"scaling {name} went unnoticed"
    assert any(c.metric.startswith("logits.") for c in report.artifacts[0].failures)


def test_cli_parity_writes_json_and_junit_and_exits_by_verdict(onnx_out, tmp_path):
    _, out = onnx_out
    report_dir = tmp_path / "report"
    assert main(["parity", str(out), "--report", str(report_dir)]) == 0
    data = json.loads((report_dir / "parity.json").read_text())
    assert data["passed"] is True and {a["name"] for a in data["artifacts"]} == {"onnx-fp32", "onnx-int8"}
    suite = ET.parse(report_dir / "junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    gates = tmp_path / "gates.toml"
    gates.write_text('["onnx-int8"]\n"logits.max_abs" = 0.0\n')
    assert main(["parity", str(out), "--report", str(report_dir), "--gates", str(gates)]) == 1
    suite = ET.parse(report_dir / "junit.xml").getroot()
    assert suite.get("failures") == "1"
    assert "logits.max_abs" in suite.find("testcase[@name='onnx-int8']/failure").get("message")


class _Fixed(Runner):
    def __init__(self, name, outputs, fail=False):
        super().__init__(name)
        self.outputs = outputs
        self.fail = fail

    def infer(self, feed):
        if self.fail:
            raise RuntimeError("runtime exploded")
        return {"logits": self.outputs(feed)}


def _feeds():
    return [{"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]])}]


def test_nan_always_fails_and_a_crashing_runner_is_reported():
    ref = _Fixed("ref", lambda f: np.array([[1.0, 2.0], [3.0, 1.0]], np.float32))
    nan = _Fixed("nan", lambda f: np.array([[np.nan, 2.0], [3.0, 1.0]], np.float32))
    crash = _Fixed("crash", None, fail=True)
    results = Comparator.run([ref, nan, crash], _feeds())
    gates = {"nan": ("fp32", gates_for("nan", "fp32")), "crash": ("fp32", gates_for("crash", "fp32"))}
    verdicts = {
        v.name: v for v in Comparator.compare_accuracy(results, "ref", Task.SEQUENCE_CLASSIFICATION, _feeds(), gates)
    }
    assert not verdicts["nan"].passed and verdicts["nan"].metrics["nonfinite"] == 1
    assert not verdicts["crash"].passed and "runtime exploded" in verdicts["crash"].error


def test_metrics_ignore_padding_and_measure_agreement():
    feeds = _feeds()
    ref = [{"logits": np.array([[[1.0, 0.0]] * 4, [[0.0, 1.0]] * 4], np.float32)}]
    got = [{"logits": ref[0]["logits"].copy()}]
    got[0]["logits"][1, 3] = [100.0, -100.0]  # padded position: ignored
    m = compare_outputs(Task.TOKEN_CLASSIFICATION, feeds, ref, got)
    assert m["logits.max_abs"] == 0.0 and m["token_agreement"] == 1.0
    got[0]["logits"][0, 0] = [0.0, 1.0]  # a real token flips
    m = compare_outputs(Task.TOKEN_CLASSIFICATION, feeds, ref, got)
    assert m["token_agreement"] == pytest.approx(5 / 6)


def test_best_span_respects_order_and_length():
    start = np.array([0.0, 5.0, 0.0, 9.0])
    end = np.array([0.0, 0.0, 3.0, 0.0])
    assert best_span(start, end) == (3, 3)
    assert best_span(start, end, max_len=1) == (3, 3)
    # end before start (1, 0) would score 14: not allowed
    assert best_span(np.array([0.0, 5.0, 0.0]), np.array([9.0, 0.0, 5.0])) == (1, 2)


def test_gate_files_validate_and_override(tmp_path):
    good = tmp_path / "g.toml"
    good.write_text('[int8]\n"*.cosine_min" = 0.5\n["onnx-int8"]\n"logits.cosine_min" = 0.9\n')
    overrides = load_gate_file(good)
    gates = expand(gates_for("onnx-int8", "int8", overrides), {"logits.cosine_min": 1.0, "top1_agreement": 1.0})
    assert Gate("logits.cosine_min", 0.9) in gates
    bad = tmp_path / "b.toml"
    bad.write_text('[int8]\n"logits.cosine" = 0.5\n')
    with pytest.raises(PocketbertError, match="unknown gate 'logits.cosine'"):
        load_gate_file(bad)
    broken = tmp_path / "c.toml"
    broken.write_text("[int8\n")
    with pytest.raises(PocketbertError, match="not valid TOML"):
        load_gate_file(broken)
