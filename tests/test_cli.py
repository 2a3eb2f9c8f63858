"""The command line: help, and bad input rejected with one line and nothing half-written."""

from __future__ import annotations

import pytest

from pocketbert.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("export", "parity"):
        assert command in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "tensorrt"], "unknown format 'tensorrt'; valid: onnx"),
        (["--precision", "int4"], "onnx does not support precision 'int4'"),
        (["--buckets", "32,512"], "sequence bucket 512 is longer than the model's max positions (256)"),
        (["--buckets", "64,32"], "ascending"),
        (["--opset", "13"], "opset must be at least 17"),
        (["--precision", "int8-static", "--calibration", "EMPTY"], "has no texts"),
        (["--precision", "int8-static", "--calibration", "MISSING"], "does not exist"),
    ],
)
def test_bad_export_input(tiny_models, tmp_path, capsys, extra, message):
    (tmp_path / "EMPTY").write_text("\n  \n")
    extra = [str(tmp_path / e) if e in ("EMPTY", "MISSING") else e for e in extra]
    out = tmp_path / "out"
    code = main(["export", str(tiny_models("bert", "feature-extraction")), "-o", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert message in err[-1] and err[-1].startswith("pocketbert export: error:")
    assert not out.exists(), "a failed export must not leave an output directory"
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name], "staging dir left behind"


def test_refuses_foreign_output_dir_unless_forced(tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    model = str(tiny_models("bert", "feature-extraction"))
    assert main(["export", model, "-o", str(out), "--precision", "fp32"]) == 2
    assert "not a pocketbert output" in capsys.readouterr().err
    assert (out / "precious.txt").exists()


def test_parity_on_a_directory_without_manifest(tmp_path, capsys):
    assert main(["parity", str(tmp_path)]) == 2
    assert "has no manifest.json" in capsys.readouterr().err


def test_export_adds_to_an_output_of_the_same_model(tiny_models, tmp_path):
    model = str(tiny_models("distilbert", "feature-extraction"))
    out = tmp_path / "out"
    assert main(["export", model, "-o", str(out), "--precision", "fp32"]) == 0
    assert main(["export", model, "-o", str(out), "--precision", "int8"]) == 0
    import json

    names = [a["name"] for a in json.loads((out / "manifest.json").read_text())["artifacts"]]
    assert names == ["onnx-fp32", "onnx-int8"]
