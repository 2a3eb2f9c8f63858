"""``pocketbert bundle``: exactly the manifest's files land in each app, atomically, and bad input is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pocketbert.bundle.bundler import ANDROID, BUNDLE_DIR, IOS, bundle
from pocketbert.cli import main
from pocketbert.core.artifact import Artifact, ExportSettings, TensorInfo, finalize, sha256_of, write_json_atomic
from pocketbert.errors import PocketbertError
from pocketbert.exporting.manifest import build_manifest, write_tokenizer
from pocketbert.loading import LoadedModel, uncased_tokenizer
from pocketbert.tasks import Task

REPO = Path(__file__).resolve().parents[1]
APPS = REPO / "apps_sample"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_out(tmp: Path, formats: list[tuple[str, str]]) -> Path:
    """An output dir written by the real manifest code, with placeholder model files (the bundler never runs them)."""
    out = tmp / "out"
    out.mkdir()
    loaded = LoadedModel(
        model=SimpleNamespace(config=SimpleNamespace(hidden_size=32)),
        tokenizer=uncased_tokenizer(),
        task=Task.SEQUENCE_CLASSIFICATION,
        architecture="bert",
        source="tiny",
        origin="a test model",
        labels=["neg", "pos"],
    )
    tokenizer = write_tokenizer(loaded, out)
    artifacts = []
    io = {
        "inputs": [TensorInfo(n, "int64", ["batch", "sequence"]) for n in ("input_ids", "attention_mask")],
        "outputs": [TensorInfo("logits", "float32", ["batch", 2])],
    }
    for fmt, precision in formats:
        if fmt == "coreml":  # a directory package of several files
            root = f"coreml/{precision}/model.mlpackage"
            _write(out / root / "Manifest.json", f"{{{precision}}}".encode())
            _write(out / root / "Data/com.apple.CoreML/model.mlmodel", f"model {precision}".encode())
            _write(out / root / "Data/com.apple.CoreML/weights/weight.bin", bytes(range(256)) * 3)
            artifacts.append(finalize(Artifact(fmt, precision, root, **io), out))
        else:
            path = f"{fmt}/{precision}/model.{fmt}"
            _write(out / path, f"{fmt} {precision} weights".encode() * 100)
            artifacts.append(finalize(Artifact(fmt, precision, path, **io), out))
    write_json_atomic(out / "manifest.json", build_manifest(loaded, ExportSettings(), tokenizer, artifacts, seed=0))
    return out


@pytest.fixture
def apps(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the real sample apps (their markers), without any bundled model."""
    android, ios = tmp_path / "android", tmp_path / "ios"
    shutil.copytree(APPS / "android", android, ignore=shutil.ignore_patterns("node_modules", "build", BUNDLE_DIR))
    shutil.copytree(APPS / "ios", ios, ignore=shutil.ignore_patterns(".build", BUNDLE_DIR, "Goldens"))
    return android, ios


def bundled_files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


ALL = [
    ("onnx", "fp32"),
    ("onnx", "int8"),
    ("tflite", "fp32"),
    ("tflite", "int8"),
    ("coreml", "fp16"),
    ("coreml", "int8"),
]


def test_each_app_gets_exactly_the_manifest_files(tmp_path, apps):
    out = make_out(tmp_path, ALL)
    android, ios = apps
    results = bundle(out, android=android, ios=ios)
    assert [r.artifact for r in results] == ["tflite-int8", "coreml-int8"]
    for app, target in ((android, ANDROID), (ios, IOS)):
        directory = app / target.assets / BUNDLE_DIR
        manifest = json.loads((directory / "manifest.json").read_text())
        (artifact,) = manifest["artifacts"]
        expected = {"manifest.json", manifest["tokenizer"]["vocab"], *artifact["files"]}
        assert bundled_files(directory) == expected
        assert manifest["tokenizer"]["files"] == [manifest["tokenizer"]["vocab"]]
        assert sha256_of([directory / f for f in artifact["files"]]) == artifact["sha256"]
        assert (directory / artifact["files"][0]).read_bytes() == (out / artifact["files"][0]).read_bytes()
        assert manifest["bundle"]["platform"] == target.platform
        assert manifest["model"]["labels"] == ["neg", "pos"]
    ios_files = json.loads((ios / IOS.assets / BUNDLE_DIR / "manifest.json").read_text())["artifacts"][0]["files"]
    assert len(ios_files) == 3 and ios_files == sorted(ios_files, key=lambda f: Path(f).parts)
    assert not [p for p in (android / ANDROID.assets).iterdir() if p.name != BUNDLE_DIR]  # no temp dirs left


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        ([("onnx", "fp32"), ("tflite", "fp32")], "tflite-fp32"),
        ([("onnx", "fp32"), ("onnx", "int8")], "onnx-int8"),
        ([("onnx", "fp32")], "onnx-fp32"),
    ],
)
def test_android_prefers_tflite_int8_then_fp32_then_onnx(tmp_path, apps, formats, expected):
    out = make_out(tmp_path, formats)
    (result,) = bundle(out, android=apps[0])
    assert result.artifact == expected


def test_artifact_override_and_unusable_override(tmp_path, apps):
    out = make_out(tmp_path, ALL)
    (result,) = bundle(out, android=apps[0], artifacts=["onnx-fp32"])
    assert result.artifact == "onnx-fp32"
    assert not (apps[0] / ANDROID.assets / BUNDLE_DIR / "tflite").exists()  # the previous choice is gone
    with pytest.raises(PocketbertError, match="runs only coreml"):
        bundle(out, ios=apps[1], artifacts=["onnx-fp32"])
    with pytest.raises(PocketbertError, match="no artifact nope"):
        bundle(out, android=apps[0], artifacts=["nope"])


def test_refuses_out_without_manifest_and_foreign_targets(tmp_path, apps):
    out = make_out(tmp_path, ALL)
    with pytest.raises(PocketbertError, match="has no manifest.json"):
        bundle(tmp_path / "apps-but-no-out", android=apps[0])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with pytest.raises(PocketbertError, match="not pocketbert's android sample app"):
        bundle(out, android=foreign)
    with pytest.raises(PocketbertError, match="not pocketbert's ios sample app"):
        bundle(out, android=apps[0], ios=apps[0])
    assert not (apps[0] / ANDROID.assets / BUNDLE_DIR).exists()  # refused before writing anything
    assert bundled_files(foreign) == set()


def test_corrupt_artifact_is_refused_and_previous_bundle_kept(tmp_path, apps):
    out = make_out(tmp_path, [("tflite", "int8")])
    bundle(out, android=apps[0])
    directory = apps[0] / ANDROID.assets / BUNDLE_DIR
    before = {f: (directory / f).read_bytes() for f in bundled_files(directory)}
    (out / "tflite/int8/model.tflite").write_bytes(b"tampered")
    with pytest.raises(PocketbertError, match="does not match its sha256 in manifest.json"):
        bundle(out, android=apps[0])
    assert {f: (directory / f).read_bytes() for f in bundled_files(directory)} == before


def test_cli_one_line_error(tmp_path, apps, capsys):
    assert main(["bundle", str(tmp_path), "--android", str(apps[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pocketbert bundle: error:") and "\n" not in err
    out = make_out(tmp_path, ALL)
    assert main(["bundle", str(out), "--android", str(apps[0]), "--ios", str(apps[1])]) == 0
    assert "tflite-int8" in capsys.readouterr().out


def _keys(value: object) -> set[str]:
    """Every key path in a JSON value (lists contribute their first element's keys)."""
    if isinstance(value, dict):
        return {k for k in value} | {f"{k}.{sub}" for k, v in value.items() for sub in _keys(v)}
    if isinstance(value, list) and value:
        return _keys(value[0])
    return set()


def test_bundle_manifest_has_every_key_the_app_fixtures_use(tmp_path, apps):
    """The Kotlin and Swift tests parse a committed fixture; the real bundle manifest must carry all of its keys."""
    out = make_out(tmp_path, ALL)
    bundle(out, android=apps[0])
    real = json.loads((apps[0] / ANDROID.assets / BUNDLE_DIR / "manifest.json").read_text())
    fixture = json.loads((APPS / "android/core/src/test/resources/bundle/manifest.json").read_text())
    assert _keys(fixture) - _keys(real) == set()
