"""What an export produces: artifact descriptions, export settings, and the manifest that records them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.fsutil import apply_umask
from pocketbert.quantize.weight_recipes import DEFAULT_WEIGHT_RECIPE

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2
DEFAULT_BUCKETS: tuple[int, ...] = (32, 64, 128)


@dataclass
class TensorInfo:
    """Name, element type (numpy name) and symbolic or fixed shape of one artifact input or output."""

    name: str
    dtype: str
    shape: list[Any]


@dataclass
class Artifact:
    """One exported model file (or package) and how it was made.

    ``path`` is relative to the output directory; ``files`` lists every file belonging to the artifact
    (relative to the output directory), e.g. an ONNX model and its external data; ``file_sha256`` maps each of
    them to its hex sha256 and ``sha256`` hashes all of them in sorted path order.
    """

    format: str
    precision: str
    path: str
    scheme: str = "none"
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    sequence_buckets: list[int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    file_sha256: dict[str, str] = field(default_factory=dict)
    size_bytes: int = 0

    @property
    def name(self) -> str:
        """Stable identifier, ``<format>-<precision>`` (e.g. ``onnx-int8``)."""
        return f"{self.format}-{self.precision}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        values = dict(data)
        values.pop("name", None)
        for key in ("inputs", "outputs"):
            values[key] = [TensorInfo(**t) for t in values.get(key, [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass
class ExportSettings:
    """Settings shared by every exporter.

    Attributes:
        max_length: longest input in tokens that artifacts are built and verified for.
        sequence_buckets: static sequence lengths for formats with static shapes (TFLite signatures, Core ML
            enumerated shapes); ascending, the last one equal to ``max_length``.
        int8_scheme: ``dynamic`` (int8 weights, float activations) or ``static`` (calibrated int8 activations).
        calibration_file: text file, one text per line, for static int8; ``None`` uses the built-in texts.
        opset: ONNX opset.
        coreml_target: Core ML minimum deployment target, e.g. ``iOS16``.
        int8_budget: parity budget for int8 (e.g. ``cosine>=0.995``): the most sensitive weight ops stay float
            until it holds on the calibration texts; ``None`` quantizes every weight op.
        onnx_fusion: apply ONNX Runtime's transformer fusions (Attention, SkipLayerNorm, BiasGelu) before ONNX int8
            dynamic quantization (off by default: measured here it bought no speed and no fidelity, and the unfused
            graph keeps to standard ONNX ops).
        onnx_int8_weights: how ONNX dynamic int8 stores weights (:mod:`pocketbert.quantize.weight_recipes`):
            ``u8`` (default: exact on every CPU), ``s8`` (fastest on x86 with VNNI, saturates on x86 without it),
            ``s7`` (ORT's ``reduce_range``).
    """

    max_length: int = 128
    sequence_buckets: list[int] = field(default_factory=lambda: list(DEFAULT_BUCKETS))
    int8_scheme: str = "dynamic"
    calibration_file: str | None = None
    opset: int = 18
    coreml_target: str = "iOS16"
    int8_budget: str | None = None
    onnx_fusion: bool = False
    onnx_int8_weights: str = DEFAULT_WEIGHT_RECIPE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(paths: list[Path]) -> str:
    """SHA-256 of a file, or of several files (a directory package) hashed in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def files_under(path: Path) -> list[Path]:
    """The file itself, or every file below a directory (e.g. an ``.mlpackage``)."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def finalize(artifact: Artifact, out_dir: Path) -> Artifact:
    """Fill ``files``, ``sha256``, ``file_sha256`` and ``size_bytes`` from what is on disk below ``out_dir``."""
    from pocketbert.integrity import digests

    root = out_dir / artifact.path
    files = [root] if not root.is_dir() else files_under(root)
    extra = [out_dir / f for f in artifact.files if (out_dir / f) not in files]
    everything = files + extra
    artifact.files = sorted(str(p.relative_to(out_dir)) for p in everything)
    artifact.sha256 = sha256_of(everything)
    artifact.file_sha256 = digests(out_dir, artifact.files)
    artifact.size_bytes = sum(p.stat().st_size for p in everything)
    return artifact


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file in the same directory, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        apply_umask(Path(tmp))
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """Read ``OUT/manifest.json``, with a one-line error when ``out_dir`` is not a pocketbert output."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise PocketbertError(f"{out_dir} has no {MANIFEST_NAME}: pass a directory written by 'pocketbert export'")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PocketbertError(f"{path} is not valid JSON ({exc.msg}); re-run 'pocketbert export'") from None
    if data.get("schema_version") != MANIFEST_VERSION:
        raise PocketbertError(
            f"{path} has schema_version {data.get('schema_version')}, this pocketbert reads {MANIFEST_VERSION}; "
            "re-run 'pocketbert export' into it"
        )
    return data


def manifest_artifacts(manifest: dict[str, Any]) -> list[Artifact]:
    """The artifacts listed in a manifest."""
    return [Artifact.from_dict(a) for a in manifest.get("artifacts", [])]
