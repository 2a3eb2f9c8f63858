"""One rule for every command writing OUT: lock, foreign content, --force, consistent manifest, stale dirs, umask."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from pocketbert.cli import main
from pocketbert.run.lock import OutputLock

FAST_RUN = ["--format", "onnx", "--precision", "fp32", "--no-bench", "--quiet"]


def _snapshot(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_run_refuses_an_out_of_another_model_without_force(onnx_out, tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    before = _snapshot(out)
    other = str(tiny_models("bert", "feature-extraction"))
    assert main(["run", other, "-o", str(out), *FAST_RUN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "holds artifacts of another model" in err[-1] and "--force" in err[-1]
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "building dir or lock left behind"


def test_export_refuses_an_out_locked_by_a_run(tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    with OutputLock(out):
        code = main(["export", str(tiny_models("bert", "feature-extraction")), "--precision", "fp32", "-o", str(out)])
    assert code == 2
    assert "another pocketbert run" in capsys.readouterr().err
    assert not out.exists()


def test_export_refuses_to_keep_artifacts_built_with_other_buckets(onnx_out, tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    before = _snapshot(out)
    model = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", model, "--precision", "int8", "--buckets", "16,32", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "keeps onnx-fp32 built for max length 128" in err and "--force" in err
    assert _snapshot(out) == before


def test_forced_reexport_with_other_buckets_describes_exactly_the_files_present(onnx_out, tiny_models, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    model = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", model, "--precision", "int8", "--buckets", "16,32", "--force", "-o", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["max_length"], manifest["sequence_buckets"]) == (32, [16, 32])
    assert [a["name"] for a in manifest["artifacts"]] == ["onnx-int8"]
    listed = {f for a in manifest["artifacts"] for f in a["files"]} | set(manifest["tokenizer"]["files"])
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == listed | {"manifest.json"}


def test_stale_aside_dirs_of_dead_processes_are_removed(onnx_out, tiny_models, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".out.staging-{dead.pid}-abc123", tmp_path / f".out.building-{dead.pid}-x_y9"]
    alive = tmp_path / f".out.staging-{os.getppid()}-live01"  # a live process: not ours to remove
    unrelated = [tmp_path / ".out.notes", tmp_path / f".other.staging-{dead.pid}-abc123"]
    for path in [*stale, alive, *unrelated]:
        path.mkdir()
        (path / "big.bin").write_bytes(b"x" * 100)
    model = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", model, "--precision", "fp32", "-o", str(tmp_path / "out")]) == 0
    assert not any(p.exists() for p in stale)
    assert alive.exists() and all(p.exists() for p in unrelated)


def test_outputs_follow_the_umask(onnx_out, tiny_models, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        model = str(tiny_models("distilbert", "sequence-classification"))
        assert main(["export", model, "--precision", "fp32", "-o", str(out)]) == 0
        assert main(["parity", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for rel in ("manifest.json", "report/parity.json", "onnx/fp32/model.onnx", "tokenizer/vocab.txt"):
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o644, rel


def test_export_to_an_unwritable_parent_is_one_line(tiny_models, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    model = str(tiny_models("bert", "feature-extraction"))
    assert main(["export", model, "--precision", "fp32", "-o", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a writable directory" in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories, so there is nothing to refuse")
def test_export_to_a_read_only_out_is_one_line(onnx_out, tiny_models, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    out.chmod(0o555)
    try:
        model = str(tiny_models("distilbert", "sequence-classification"))
        assert main(["export", model, "--precision", "int8", "-o", str(out)]) == 2
    finally:
        out.chmod(0o755)
    assert "is not writable" in capsys.readouterr().err
