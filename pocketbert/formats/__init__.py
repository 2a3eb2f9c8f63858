"""The format registry: every subpackage of ``pocketbert/formats/`` with a ``FORMAT`` is a format.

Everything that lists formats (CLI help, run-config validation, the manifest schema, bench specs, the bundle's
choice, the report, the kernel families) iterates :func:`all_formats`; adding a format is adding a folder. A
format package's ``__init__`` imports no runtime (see :mod:`pocketbert.formats.base`), so discovery is cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from pocketbert.core.artifact import Artifact
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.formats.base import Format


@cache
def _registry() -> dict[str, Format]:
    found: list[Format] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if isinstance(fmt, Format):
            if fmt.name != info.name:
                raise PocketbertError(f"format package {info.name} declares the name {fmt.name!r}")
            found.append(fmt)
    return {fmt.name: fmt for fmt in sorted(found, key=lambda f: (f.order, f.name))}


def all_formats() -> list[Format]:
    """Every format, in listing order."""
    return list(_registry().values())


def format_names() -> list[str]:
    """Every format's name, in listing order (``onnx``, ``tflite``, ``coreml``, ``executorch``)."""
    return list(_registry())


def libraries() -> tuple[str, ...]:
    """The distributions whose versions a report records: the model stack, then every format's own."""
    names = ["torch", "transformers", "numpy"]
    for fmt in all_formats():
        names += [lib for lib in fmt.libraries if lib not in names]
    return tuple(names)


def get_format(name: str) -> Format:
    """The format called ``name``, or a one-line error listing the valid ones."""
    registry = _registry()
    if name not in registry:
        raise PocketbertError(f"unknown format {name!r}; valid: {', '.join(registry)}")
    return registry[name]


def format_of(artifact: Artifact) -> Format:
    """The format of an artifact of a manifest."""
    return get_format(artifact.format)


def runner_for(artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
    """The runner that executes ``artifact`` (stored below ``out_dir``) in its own runtime; one-line errors for an
    unknown format or a missing file."""
    fmt = get_format(artifact.format)
    path = Path(out_dir) / artifact.path
    if not path.exists():
        raise PocketbertError(f"artifact {artifact.name} is missing: {path} does not exist; re-run the export")
    return fmt.make_runner(artifact, Path(out_dir), threads)
