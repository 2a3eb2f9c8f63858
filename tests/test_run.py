"""The main job end to end on a tiny model: layout, manifest schema and hashes, verdict, atomicity, lock, config."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from pocketbert.cli import main
from pocketbert.core.artifact import sha256_of
from pocketbert.run.lock import OutputLock

FAST = ["--format", "onnx", "--no-bench", "--quiet"]


@pytest.fixture(scope="module")
def run_out(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    code = main(["run", str(tiny_models("distilbert", "sequence-classification")), "-o", str(out), *FAST])
    return code, out


def test_run_writes_the_documented_layout(run_out):
    code, out = run_out
    assert code == 0
    for rel in (
        "manifest.json",
        "tokenizer/vocab.txt",
        "onnx/fp32/model.onnx",
        "onnx/int8/model.onnx",
        "report/index.html",
        "report/report.md",
        "report/parity.json",
        "report/junit.xml",
    ):
        assert (out / rel).is_file(), rel
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "building dir or lock left behind"


def test_manifest_validates_and_hashes_match(run_out):
    _, out = run_out
    manifest = json.loads((out / "manifest.json").read_text())
    schema = json.loads(resources.files("pocketbert.schemas").joinpath("manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    for artifact in manifest["artifacts"]:
        files = [out / f for f in artifact["files"]]
        assert sha256_of(files) == artifact["sha256"]
        assert sum(f.stat().st_size for f in files) == artifact["size_bytes"]
        assert artifact["parity"]["passed"] is True
    for rel in manifest["tokenizer"]["files"]:
        assert (out / rel).is_file()


def test_html_report_is_self_contained(run_out):
    _, out = run_out
    page = (out / "report/index.html").read_text()
    assert "every parity gate passed" in page and "onnx-int8" in page
    assert 'src="http' not in page and 'href="http' not in page


def test_impossible_gate_fails_the_run(tiny_models, tmp_path):
    gates = tmp_path / "gates.toml"
    gates.write_text('[int8]\n"*.max_abs" = 0.0\n')
    out = tmp_path / "out"
    code = main(["run", str(tiny_models("bert", "feature-extraction")), "-o", str(out), "--gates", str(gates), *FAST])
    assert code == 1
    manifest = json.loads((out / "manifest.json").read_text())
    verdicts = {a["name"]: a["parity"]["passed"] for a in manifest["artifacts"]}
    assert verdicts == {"onnx-fp32": True, "onnx-int8": False}
    assert "parity FAILED" in (out / "report/report.md").read_text()


def test_a_failure_in_a_late_stage_leaves_no_output(tiny_models, tmp_path, monkeypatch, capsys):
    import pocketbert.report.write as write

    def boom(*args, **kwargs):
        raise OSError("disk full while writing the report")

    monkeypatch.setattr(write, "write_reports", boom)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        main(["run", str(tiny_models("bert", "feature-extraction")), "-o", str(out), *FAST])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "building dir or lock left behind"


def test_a_failed_rerun_keeps_the_previous_output(run_out, tiny_models, monkeypatch):
    import pocketbert.report.write as write

    _, out = run_out
    before = (out / "manifest.json").read_text()
    monkeypatch.setattr(write, "write_reports", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("late failure")))
    with pytest.raises(RuntimeError):
        main(["run", str(tiny_models("distilbert", "sequence-classification")), "-o", str(out), *FAST])
    assert (out / "manifest.json").read_text() == before


def test_the_lock_refuses_a_concurrent_run(tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    with OutputLock(out):
        code = main(["run", str(tiny_models("bert", "feature-extraction")), "-o", str(out), *FAST])
    assert code == 2
    assert "another pocketbert run" in capsys.readouterr().err
    assert not out.exists()


def test_config_file_flags_override_and_bad_keys(tmp_path, capsys):
    config = tmp_path / "pocketbert.toml"
    config.write_text('formats = ["onnx"]\noutput = "x"\n[bench]\nthreads = 1\nseq = [16]\n')
    assert main(["run", "--config", str(config), "--print-config", "-o", "y", "--threads", "2"]) == 0
    text = capsys.readouterr().out
    assert 'output = "y"' in text and 'formats = ["onnx"]' in text and "threads = 2" in text and "seq = [16]" in text
    config.write_text('formatz = ["onnx"]\n')
    assert main(["run", "--config", str(config), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'formatz'; valid: model, task" in err
    config.write_text("[bench]\nthreads = 0\n")
    assert main(["run", "--config", str(config), "--print-config"]) == 2
    assert "threads must be at least 1" in capsys.readouterr().err


def test_refuses_foreign_or_unwritable_output(tiny_models, tmp_path, capsys):
    model = str(tiny_models("bert", "feature-extraction"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["run", model, "-o", str(foreign), *FAST]) == 2
    assert "not a pocketbert output" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", model, "-o", str(blocker / "out"), *FAST]) == 2
    assert "is not a writable directory" in capsys.readouterr().err


def test_run_with_bench_folds_latency_into_report_and_manifest(tiny_models, tmp_path):
    out = tmp_path / "out"
    baseline = str(tiny_models("bert", "sequence-classification"))
    args = ["run", str(tiny_models("distilbert", "sequence-classification")), "-o", str(out), "--format", "onnx"]
    code = main([*args, "--baseline", baseline, "--seq", "16", "--repeats", "2", "--quiet"])
    assert code == 0
    report = out / "report"
    for name in ("bench.json", "bench.md", "bench_latency.png", "bench_tradeoff.png"):
        assert (report / name).is_file(), name
    bench = json.loads((report / "bench.json").read_text())
    medians = {c["runner"]: c["median_ms"] for c in bench["cells"] if c["status"] == "ok"}
    manifest = json.loads((out / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        assert artifact["latency"] == {"16": round(medians[artifact["name"]], 3)}
    page = (report / "index.html").read_text()
    assert "Latency vs BERT" in page and page.count("data:image/png;base64,") == 2
