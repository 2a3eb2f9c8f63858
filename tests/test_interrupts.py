"""SIGINT and SIGTERM stop every stage and leave OUT as it was, even when a library swallows the interrupt."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pocketbert.cli import main

REPO = Path(__file__).resolve().parents[1]
FAST_RUN = ["--format", "onnx", "--precision", "fp32", "--no-bench", "--quiet"]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _swallowing(original, signum: int):
    """``original``, preceded by ``signum`` sent to this process and swallowed by a bare ``except`` (as coremltools
    does around its optional imports)."""

    def wrapper(*args, **kwargs):
        try:
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the Python-level handler runs between bytecodes
                pass
        except:  # noqa: E722 - the library behaviour under test
            pass
        return original(*args, **kwargs)

    return wrapper


@pytest.fixture
def survive_sigterm():
    """Without pocketbert's own handler a SIGTERM would end the test process; record it instead."""
    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    yield
    signal.signal(signal.SIGTERM, previous)


RUN_STAGES = {
    "load model": ("pocketbert.run.job", "load_model"),
    "export onnx": ("pocketbert.run.job", "export_model"),
    "parity": ("pocketbert.parity.check", "check_parity"),
    "report": ("pocketbert.report.write", "write_reports"),
}


CASES = [(stage, signal.SIGINT) for stage in sorted(RUN_STAGES)] + [("export onnx", signal.SIGTERM)]


@pytest.mark.parametrize("stage, signum", CASES, ids=[f"{s}-{signal.Signals(n).name}" for s, n in CASES])
def test_run_stops_at_every_stage(onnx_out, tiny_models, tmp_path, monkeypatch, survive_sigterm, stage, signum):
    import importlib

    module, name = RUN_STAGES[stage]
    target = importlib.import_module(module)
    monkeypatch.setattr(target, name, _swallowing(getattr(target, name), signum))
    out = tmp_path / "out"
    shutil.copytree(onnx_out, out)
    before = _snapshot(out)
    code = main(["run", str(tiny_models("distilbert", "sequence-classification")), "-o", str(out), *FAST_RUN])
    assert code == 128 + signum
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "building dir or lock left behind"


EXPORT_STAGES = {
    "onnx fp32": ("pocketbert.formats.onnx", "FORMAT.export"),
    "tokenizer": ("pocketbert.exporting.pipeline", "write_tokenizer"),
}


@pytest.mark.parametrize("stage", sorted(EXPORT_STAGES))
def test_export_stops_at_every_stage(tiny_models, tmp_path, monkeypatch, stage):
    import importlib

    module, name = EXPORT_STAGES[stage]
    owner = importlib.import_module(module)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    monkeypatch.setattr(owner, attr, _swallowing(getattr(owner, attr), signal.SIGINT))
    out = tmp_path / "out"
    model = str(tiny_models("distilbert", "sequence-classification"))
    assert main(["export", model, "--precision", "fp32", "-o", str(out)]) == 130
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_the_coremltools_import_stops_the_export(tiny_models, tmp_path):
    """The real case: SIGINT while coremltools imports its optional parts inside a bare ``except:``."""
    pytest.importorskip("coremltools")
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import os, signal, sys

        class SendSigint:  # on the first import coremltools/_deps/__init__.py makes inside its bare excepts
            def find_spec(self, name, path=None, target=None):
                frame, deps = sys._getframe(1), os.path.join("coremltools", "_deps", "__init__.py")
                while frame and not frame.f_code.co_filename.endswith(deps):
                    frame = frame.f_back
                if frame is not None:
                    sys.meta_path.remove(self)
                    os.kill(os.getpid(), signal.SIGINT)
                    sum(range(1000))
                return None

        from pocketbert.cli import main
        sys.meta_path.insert(0, SendSigint())
        sys.exit(main(["export", {str(tiny_models("bert", "feature-extraction"))!r}, "--format", "coreml",
                       "--precision", "fp16", "-o", {str(out)!r}]))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 130, done.stderr[-2000:]
    assert "interrupted" in done.stderr
    assert list(tmp_path.iterdir()) == []
