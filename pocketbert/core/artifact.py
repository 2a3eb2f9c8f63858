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


class ExportSettings:
    """Settings of one export: the shared ones as attributes, each format's own (declared by its ``options``, see
    :mod:`pocketbert.core.options`) in :attr:`options`, also readable as attributes.

    Shared attributes:
        max_length: longest input in tokens that artifacts are built and verified for.
        sequence_buckets: static sequence lengths for formats with static shapes (TFLite signatures, Core ML
            enumerated shapes, ExecuTorch methods); ascending, the last one equal to ``max_length``.
        int8_scheme: ``dynamic`` (int8 weights, float activations) or ``static`` (calibrated int8 activations).
        calibration_file: text file, one text per line, for static int8; ``None`` uses the built-in texts.
        int8_budget: parity budget for int8 (e.g. ``cosine>=0.995``): the most sensitive weight ops stay float
            until it holds on the calibration texts, measured against PyTorch; ``None`` quantizes every weight op.

    Format options (e.g. ``opset``, ``coreml_target``, ``onnx_int8_weights``) are given as keyword arguments; one
    not given reads as its declared default through :meth:`get`.
    """

    SHARED: dict[str, Any] = {
        "max_length": 128,
        "sequence_buckets": list(DEFAULT_BUCKETS),
        "int8_scheme": "dynamic",
        "calibration_file": None,
        "int8_budget": None,
    }

    def __init__(self, **values: Any) -> None:
        for key, default in self.SHARED.items():
            value = values.pop(key, default)
            setattr(self, key, list(value) if isinstance(value, list | tuple) else value)
        self.options: dict[str, Any] = values

    def get(self, option: Any) -> Any:
        """The value of a format's :class:`pocketbert.core.options.Option`: as given, else its default."""
        return self.options.get(option.key, option.default)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"ExportSettings has no {name!r} (a format option not given reads through get())")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExportSettings) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ExportSettings({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def to_dict(self) -> dict[str, Any]:
        """Shared settings and the given format options, one flat dict (the keyword arguments that rebuild it)."""
        return {**{key: getattr(self, key) for key in self.SHARED}, **self.options}


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
    from pocketbert.core.integrity import digests

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
