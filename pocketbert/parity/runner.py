"""The one ``Runner`` interface every runtime implements, and how artifacts find their runner.

Like Polygraphy's runners: a context manager that loads on enter, ``infer(feed)`` maps named input arrays to named
output arrays, and closes on exit. Feeds hold ``input_ids`` / ``attention_mask`` int64 arrays ``(B, S)``; outputs
are float32 arrays named as in :mod:`pocketbert.tasks`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.export.artifact import Artifact
from pocketbert.kernels.facts import process_facts
from pocketbert.kernels.families import HOST

# artifact format -> module defining ``make_runner(artifact, out_dir, threads) -> Runner``
RUNNER_MODULES: dict[str, str] = {
    "onnx": "pocketbert.parity.onnx_runner",
    "tflite": "pocketbert.parity.tflite_runner",
    "coreml": "pocketbert.parity.coreml_runner",
}

Feed = dict[str, np.ndarray]


class Runner(ABC):
    """A loaded model in some runtime that maps a feed to named outputs.

    ``timing_meaningful`` is False for runners whose speed says nothing about the deployed runtime (e.g. a NumPy
    reference interpreter standing in for Core ML on Linux): the latency harness lists them as not measurable.
    """

    timing_meaningful: bool = True
    runtime: str | None = None  # the runtime's distribution name, e.g. ``onnxruntime``
    kernel_family: str = HOST  # which kernels compute the outputs (see :mod:`pocketbert.kernels`)

    def __init__(self, name: str) -> None:
        self.name = name

    def kernel_facts(self) -> dict[str, Any]:
        """Which kernels made the outputs: family, native or emulated, ISA, CPU, features, runtime and version."""
        return {"family": self.kernel_family, "execution": "native", **process_facts(self.runtime)}

    def load(self) -> None:  # noqa: B027 - optional hook, most runners load lazily
        """Load the model (called on ``__enter__``)."""

    @abstractmethod
    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        """Run one batch: ``feed`` has ``input_ids`` and ``attention_mask`` ``(B, S)``; returns float32 outputs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime (called on ``__exit__``)."""

    def __enter__(self) -> Runner:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def runner_for(artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
    """The runner that executes ``artifact`` (stored below ``out_dir``) in its own runtime."""
    return runner_module(artifact, out_dir).make_runner(artifact, Path(out_dir), threads)


def runner_module(artifact: Artifact, out_dir: Path) -> Any:
    """The module of ``artifact``'s format (``make_runner``, ``make_probe_runner``), once its file is known to
    exist below ``out_dir``; one-line errors otherwise."""
    module_name = RUNNER_MODULES.get(artifact.format)
    if module_name is None:
        raise PocketbertError(f"no runner for format {artifact.format!r}; known: {', '.join(RUNNER_MODULES)}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pocketbert"):
            raise PocketbertError(f"format {artifact.format!r} has no runner in this version of pocketbert") from None
        raise
    path = Path(out_dir) / artifact.path
    if not path.exists():
        raise PocketbertError(f"artifact {artifact.name} is missing: {path} does not exist; re-run the export")
    return module


def as_float32(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Outputs as float32 numpy arrays."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}
