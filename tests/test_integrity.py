"""Every file a user or app consumes from OUT is checksummed in the manifest and verified before use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.core.integrity import digests
from pocketbert.errors import PocketbertError
from pocketbert.parity.check import check_parity
from tests.test_bundle import make_out


def _copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(src, out)
    return out


def _flip(path: Path, offset: int, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    offset = min(offset, len(data) - count) if len(data) >= count else 0
    for i in range(offset, min(offset + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def reseal(out: Path) -> None:
    """Record the files' current sha256 in the manifest, as if the damage had happened before export."""
    from pocketbert.core.artifact import sha256_of

    manifest = json.loads((out / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        artifact["file_sha256"] = digests(out, artifact["files"])
        artifact["sha256"] = sha256_of([out / f for f in artifact["files"]])
    manifest["tokenizer"]["sha256"] = digests(out, manifest["tokenizer"]["sha256"])
    (out / "manifest.json").write_text(json.dumps(manifest))


def _unused_embedding_row_offset(out: Path) -> int:
    """Byte offset in model.onnx of a word-embedding row for a token the parity texts never produce."""
    import onnx
    from onnx import numpy_helper

    from pocketbert.exporting.manifest import read_tokenizer
    from pocketbert.parity.data import BUILTIN_TEXTS

    tok = read_tokenizer(out, "test")
    used = {i for text in BUILTIN_TEXTS for i in tok(text)["input_ids"]}
    row = next(i for i in range(len(tok) - 1, 0, -1) if i not in used)
    model = onnx.load(str(out / "onnx/fp32/model.onnx"))
    table = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.dims and t.dims[0] == len(tok))
    offset = (out / "onnx/fp32/model.onnx").read_bytes().find(np.ascontiguousarray(table[row]).tobytes())
    assert offset > 0
    return offset


def test_parity_refuses_damage_the_parity_texts_never_touch(onnx_out, tmp_path, capsys):
    out = _copy(onnx_out, tmp_path)
    _flip(out / "onnx/fp32/model.onnx", _unused_embedding_row_offset(out))
    assert main(["parity", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnx/fp32/model.onnx (onnx-fp32) does not match its sha256" in err[0]
    assert "pocketbert export" in err[0] and "--format onnx --precision fp32" in err[0]
    assert not (out / "report/parity.json").exists()
    reseal(out)  # the same bytes with matching checksums: parity alone cannot see the damage
    assert main(["parity", str(out)]) == 0


def test_parity_refuses_a_wrong_sha256_in_the_manifest(onnx_out, tmp_path, capsys):
    out = _copy(onnx_out, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"][0]["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["parity", str(out)]) == 2
    assert "onnx-fp32 in" in capsys.readouterr().err


LAYOUTS = {
    "onnx-fp32": "onnx/fp32/model.onnx",
    "tflite-int8": "tflite/int8/model.tflite",
    "coreml-int8": "coreml/int8/model.mlpackage/Data/com.apple.CoreML/weights/weight.bin",
    "coreml-fp16": "coreml/fp16/model.mlpackage/Manifest.json",
    "vocab": "tokenizer/vocab.txt",
    "tokenizer.json": "tokenizer/tokenizer.json",
}


@pytest.fixture(scope="module")
def every_layout(tmp_path_factory) -> Path:
    return make_out(
        tmp_path_factory.mktemp("layouts"),
        [("onnx", "fp32"), ("tflite", "int8"), ("coreml", "int8"), ("coreml", "fp16")],
    )


@pytest.mark.parametrize("where", ["start", "middle", "end"])
@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_every_file_type_is_verified_at_every_offset(every_layout, tmp_path, kind, where):
    out = _copy(every_layout, tmp_path)
    target = out / LAYOUTS[kind]
    size = target.stat().st_size
    _flip(target, {"start": 0, "middle": size // 2, "end": size - 1}[where], count=1 if where == "end" else 16)
    only = None if kind in ("vocab", "tokenizer.json") else [kind]
    with pytest.raises(PocketbertError, match="does not match its sha256") as info:
        check_parity(out, only=only)
    assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_bench_and_diagnose_verify_before_use(every_layout, tmp_path, capsys):
    out = _copy(every_layout, tmp_path)
    _flip(out / LAYOUTS["tflite-int8"], 0)
    assert main(["bench", str(out), "--quick"]) == 2
    assert "tflite/int8/model.tflite (tflite-int8) does not match" in capsys.readouterr().err
    assert main(["diagnose", str(out), "--artifact", "tflite-int8", "--against", "onnx-fp32"]) == 2
    assert "tflite/int8/model.tflite (tflite-int8) does not match" in capsys.readouterr().err


def test_a_missing_tokenizer_file_is_named(every_layout, tmp_path):
    out = _copy(every_layout, tmp_path)
    (out / LAYOUTS["vocab"]).unlink()
    with pytest.raises(PocketbertError, match="tokenizer/vocab.txt \\(tokenizer\\) is missing; rebuild it with"):
        check_parity(out)


def test_bundle_refuses_a_damaged_vocabulary_and_carries_its_sha256(every_layout, tmp_path):
    from pocketbert.bundle.bundler import ANDROID, BUNDLE_DIR, bundle
    from tests.test_bundle import APPS

    app = tmp_path / "android"
    shutil.copytree(APPS / "android", app, ignore=shutil.ignore_patterns("build", "assets"))
    out = _copy(every_layout, tmp_path)
    bundle(out, android=app)
    bundled = json.loads((app / ANDROID.assets / BUNDLE_DIR / "manifest.json").read_text())
    vocab = bundled["tokenizer"]["vocab"]
    assert bundled["tokenizer"]["sha256"] == digests(app / ANDROID.assets / BUNDLE_DIR, [vocab])
    _flip(out / LAYOUTS["vocab"], 100)
    with pytest.raises(PocketbertError, match="tokenizer/vocab.txt \\(tokenizer\\) does not match its sha256"):
        bundle(out, android=app)


def test_manifest_lists_every_file_in_out_with_its_sha256(onnx_out):
    from importlib import resources

    import jsonschema

    manifest = json.loads((onnx_out / "manifest.json").read_text())
    schema = json.loads(resources.files("pocketbert.schemas").joinpath("manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    listed = {f for a in manifest["artifacts"] for f in a["files"]} | set(manifest["tokenizer"]["files"])
    present = {str(p.relative_to(onnx_out)) for p in onnx_out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == present
    assert set(manifest["tokenizer"]["sha256"]) == set(manifest["tokenizer"]["files"])
    assert manifest["tokenizer"]["vocab"] in manifest["tokenizer"]["sha256"]
    for artifact in manifest["artifacts"]:
        assert artifact["file_sha256"] == digests(onnx_out, artifact["files"])
