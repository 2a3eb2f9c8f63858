"""Load the MIL program of a saved ``.mlpackage`` into a flat list of ops the interpreter runs.

The package is read from disk every time: ``Data/com.apple.CoreML/model.mlmodel`` (the protobuf spec holding the
MIL program) through coremltools' own milproto reader, and the weights from ``weights/weight.bin``. Before
reading, every weight the program references is checked against the blob file (present, header intact, data
inside the file), so a package missing its weights or with a truncated weight file fails with one line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.formats.coreml.mil.ops import NP_DTYPES

SPEC_FILE = Path("Data/com.apple.CoreML/model.mlmodel")
WEIGHTS_DIR = Path("Data/com.apple.CoreML/weights")
MODEL_PATH_PREFIX = "@model_path/"
BLOB_SENTINEL = 0xDEADBEEF
BLOB_HEADER = struct.Struct("<IIQQ")  # sentinel, dtype code, data size in bytes, data offset (64-byte header)


@dataclass(frozen=True)
class Ref:
    """A reference to a value produced by an earlier op (or a program input), by name."""

    name: str


@dataclass
class MilOp:
    """One operation: its MIL type, inputs (``Ref``, constant arrays, or lists of them) and typed outputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: list[tuple[str, str]]  # (name, MIL dtype name such as "fp16")


@dataclass(frozen=True)
class InputShapes:
    """The shapes an input accepts, from the model description: a list of enumerated shapes, or per-axis
    ``(low, high)`` ranges (``high == -1``: unbounded)."""

    enumerated: tuple[tuple[int, ...], ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()

    def accepts(self, shape: tuple[int, ...]) -> bool:
        if self.enumerated:
            return tuple(shape) in self.enumerated
        if len(shape) != len(self.ranges):
            return False
        return all(lo <= n and (hi < 0 or n <= hi) for n, (lo, hi) in zip(shape, self.ranges))

    def describe(self) -> str:
        if self.enumerated:
            return " or ".join(str(s) for s in self.enumerated)
        return " x ".join(f"{lo}..{hi if hi >= 0 else 'inf'}" for lo, hi in self.ranges)


def input_shapes(feature: Any) -> InputShapes:
    """What a multi-array input of the spec description accepts."""
    array = feature.type.multiArrayType
    if array.HasField("enumeratedShapes"):
        return InputShapes(enumerated=tuple(tuple(int(d) for d in s.shape) for s in array.enumeratedShapes.shapes))
    if array.HasField("shapeRange"):
        return InputShapes(ranges=tuple((int(r.lowerBound), int(r.upperBound)) for r in array.shapeRange.sizeRanges))
    return InputShapes(enumerated=(tuple(int(d) for d in array.shape),))


@dataclass
class MilProgram:
    """The ``main`` function of a package: typed inputs, ops in execution order, output names."""

    path: Path
    opset: str
    inputs: dict[str, str]  # name -> MIL dtype name
    ops: list[MilOp] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    shapes: dict[str, InputShapes] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # the package's user-defined metadata

    def op_types(self) -> set[str]:
        """Every op type the program uses."""
        return {o.type for o in self.ops}


def _blob_refs(message: Any, found: list[tuple[str, int]]) -> None:
    """Collect every ``(fileName, offset)`` of ``blobFileValue`` entries in a protobuf message tree."""
    for desc, value in message.ListFields():
        if desc.name == "blobFileValue":
            found.append((value.fileName, int(value.offset)))
            continue
        if desc.type != desc.TYPE_MESSAGE:
            continue
        if desc.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if hasattr(v, "ListFields")]
        elif desc.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            _blob_refs(item, found)


def check_weights(package: Path, spec: Any) -> int:
    """Check every weight blob the spec references; returns how many there are.

    Raises a one-line :class:`PocketbertError` when the weight file is missing, or a blob header or its data lies
    outside the file (truncated) or is not a blob header (corrupted offsets).
    """
    refs: list[tuple[str, int]] = []
    _blob_refs(spec.mlProgram, refs)
    sizes: dict[Path, int] = {}
    for file_name, offset in refs:
        rel = file_name[len(MODEL_PATH_PREFIX) :] if file_name.startswith(MODEL_PATH_PREFIX) else file_name
        path = package / SPEC_FILE.parent / rel
        if path not in sizes:
            if not path.is_file():
                raise PocketbertError(
                    f"{package} is missing its weights ({path.relative_to(package)}); re-run the Core ML export"
                )
            sizes[path] = path.stat().st_size
        length = sizes[path]
        if offset + BLOB_HEADER.size > length:
            raise PocketbertError(
                f"weight file {path} is truncated ({length} bytes, a weight starts at {offset}); re-export"
            )
        with path.open("rb") as handle:  # headers only: the weights themselves are read once, by the loader
            handle.seek(offset)
            sentinel, _, size, start = BLOB_HEADER.unpack(handle.read(BLOB_HEADER.size))
        if sentinel != BLOB_SENTINEL:
            raise PocketbertError(f"weight file {path} is corrupted (no weight header at byte {offset}); re-export")
        if start + size > length:
            raise PocketbertError(
                f"weight file {path} is truncated ({length} bytes, a weight ends at {start + size}); re-export"
            )
    return len(refs)


def _dtype_name(var: Any) -> str:
    from coremltools.converters.mil.mil import types

    dtype = var.dtype
    return types.builtin_to_string(dtype)


def _const_value(var: Any) -> Any:
    value = var.val
    if isinstance(value, np.ndarray) or np.isscalar(value):
        name = _dtype_name(var)
        if name in NP_DTYPES:
            return np.asarray(value, dtype=NP_DTYPES[name])
        return np.asarray(value)
    return value


def _input_value(var: Any) -> Any:
    """A constant array when ``var`` comes from a ``const`` op, else a reference to the value by name."""
    if var.op is not None and var.op.op_type == "const":
        return _const_value(var)
    return Ref(var.name)


def load_mil(package: Path) -> tuple[Any, Any]:
    """Read and validate ``package`` (an ``.mlpackage`` directory): its spec and the ``main`` function of its MIL
    program as coremltools builds it (ops with typed, shaped outputs), weights checked against the blob file."""
    try:
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
    except ImportError:
        raise MissingDependencyError("coremltools", "coreml") from None
    package = Path(package)
    if not (package / SPEC_FILE).is_file():
        raise PocketbertError(f"{package} is not a Core ML package (no {SPEC_FILE}); re-run the Core ML export")
    try:
        spec = ct.utils.load_spec(str(package))
    except Exception as exc:
        raise PocketbertError(f"cannot read the Core ML spec of {package}: {str(exc).splitlines()[0]}") from exc
    if spec.WhichOneof("Type") != "mlProgram":
        raise PocketbertError(f"{package} is a {spec.WhichOneof('Type')} model; only mlprogram packages can run")
    check_weights(package, spec)
    try:
        program = load_milproto(spec, spec.specificationVersion, file_weights_dir=str(package / WEIGHTS_DIR))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PocketbertError(f"cannot load the MIL program of {package}: {first}") from exc
    return spec, program.functions["main"]


def load_program(package: Path) -> MilProgram:
    """Read and validate ``package`` (an ``.mlpackage`` directory) into a :class:`MilProgram`."""
    package = Path(package)
    spec, function = load_mil(package)
    result = MilProgram(
        path=package,
        opset=str(function.opset_version),
        inputs={name: _dtype_name(var) for name, var in function.inputs.items()},
        outputs=[v.name for v in function.outputs],
        shapes={f.name: input_shapes(f) for f in spec.description.input if f.type.HasField("multiArrayType")},
        metadata=dict(spec.description.metadata.userDefined),
    )
    for mil_op in function.operations:
        if mil_op.op_type == "const":
            continue
        if mil_op.blocks:
            raise PocketbertError(f"op {mil_op.op_type!r} ({mil_op.name}) has nested blocks; control flow is not run")
        inputs: dict[str, Any] = {}
        for key, value in mil_op.inputs.items():
            if isinstance(value, list | tuple):
                inputs[key] = [_input_value(v) for v in value]
            else:
                inputs[key] = _input_value(value)
        outputs = [(v.name, _dtype_name(v)) for v in mil_op.outputs]
        result.ops.append(MilOp(mil_op.op_type, mil_op.name, inputs, outputs))
    return result
