"""Bad input gets one actionable line and exit 2, before any slow work, and leaves nothing behind."""

from __future__ import annotations

import json
import shutil

import pytest

from pocketbert.cli import main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a model is loaded: the input must be refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    import pocketbert.loading
    import pocketbert.parity.check
    import pocketbert.run.job

    for module in (pocketbert.loading, pocketbert.parity.check, pocketbert.run.job):
        monkeypatch.setattr(module, "load_model", refuse)


@pytest.mark.parametrize("command", ["export", "run"])
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "tensorrt"], "unknown format 'tensorrt'"),
        (["--format", "onnx", "--precision", "int4"], "onnx does not support precision 'int4'"),
        (["--format", "onnx", "--precision", "int8-static", "--calibration", "MISSING"], "does not exist"),
        (["--format", "onnx", "--budget", "cosine>=1.5"], "can never hold"),
    ],
)
def test_request_is_checked_before_the_model_load(tmp_path, capsys, no_model_load, command, extra, message):
    extra = [str(tmp_path / e) if e == "MISSING" else e for e in extra]
    out = tmp_path / "out"
    assert (
        main(
            [command, "random:bert-base-uncased", "-o", str(out), *extra, "--quiet"][: None if command == "run" else -1]
        )
        == 2
    )
    assert message in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_question_answering_on_a_three_label_model(tiny_models, tmp_path, capsys):
    model = str(tiny_models("bert", "sequence-classification"))
    assert main(["export", model, "--task", "question-answering", "-o", str(tmp_path / "out")]) == 2
    assert "question-answering needs a head of 2 outputs" in _one_line(capsys)


def test_a_file_passed_as_model(tmp_path, capsys):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    assert main(["export", str(model), "-o", str(tmp_path / "out")]) == 2
    assert "is a file, not a directory" in _one_line(capsys)


def test_an_invalid_config_json(tiny_models, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_models("bert", "feature-extraction"), model)
    (model / "config.json").write_text("{not json")
    assert main(["export", str(model), "-o", str(tmp_path / "out")]) == 2
    assert "config.json is not a valid model config" in _one_line(capsys)


def test_a_task_whose_head_the_checkpoint_lacks(tiny_models, tmp_path, capsys):
    model = str(tiny_models("bert", "feature-extraction"))
    assert main(["export", model, "--task", "sequence-classification", "-o", str(tmp_path / "out")]) == 2
    line = _one_line(capsys)
    assert "has no trained weights for a sequence-classification head" in line and "--task feature-extraction" in line


def test_a_reference_with_another_head(onnx_out, tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    assert main(["parity", str(out), "--reference", str(tiny_models("bert", "feature-extraction"))]) == 2
    assert "has no trained weights for a sequence-classification head" in _one_line(capsys)


def test_parity_of_one_artifact_keeps_the_others_in_the_report(onnx_out, tiny_models, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    model = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", model, "--precision", "int8", "-o", str(out)]) == 0
    assert main(["parity", str(out)]) == 0
    assert main(["parity", str(out), "--artifact", "onnx-int8"]) == 0
    report = json.loads((out / "report/parity.json").read_text())
    assert [a["name"] for a in report["artifacts"]] == ["onnx-fp32", "onnx-int8"]
    assert 'tests="2"' in (out / "report/junit.xml").read_text()
