"""Runners for Core ML packages: Core ML itself on macOS, the MIL reference interpreter everywhere else.

``make_runner`` picks :class:`CoreMLRunner` when ``coremltools.models.MLModel(...).predict`` works (macOS with
Core ML) and :class:`MilRunner` otherwise; ``POCKETBERT_COREML_RUNNER=mil|coreml`` forces one.

Why a hand-written interpreter: coremltools cannot predict on Linux, and no maintained library executes MIL
programs outside Core ML. :class:`MilRunner` proves the package's numerics (its program and weights as saved,
in the declared fp16/fp32 dtypes); it does not prove Apple's kernels, Neural Engine placement or speed, so its
``timing_meaningful`` is False.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from pocketbert.core.artifact import Artifact
from pocketbert.core.buckets import run_bucketed
from pocketbert.core.runner import Feed, Runner, as_float32
from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.tasks import Task

ENV_RUNNER = "POCKETBERT_COREML_RUNNER"


class _PackageRunner(Runner):
    """Shared by both Core ML runners: packages with enumerated shapes (iOS18+) run each text in its bucket.

    ``buckets`` are the artifact's ``sequence_buckets`` (``None`` for range shapes, where a feed runs as is);
    ``task`` tells which outputs are per token, to cut the bucket padding back off.
    """

    def __init__(self, path: Path, name: str, buckets: list[int] | None = None, task: Task | None = None) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.buckets = list(buckets) if buckets else None
        self.task = task
        if self.buckets and task is None:
            raise PocketbertError(f"{name}: a package with sequence buckets needs its task to run; re-run the export")

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        if not self.buckets:
            return as_float32(self._predict(feed))

        def run_one(bucket: int, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
            return self._predict({"input_ids": ids, "attention_mask": mask})

        return as_float32(run_bucketed(feed, self.buckets, self.task, run_one))


class MilRunner(_PackageRunner):
    """Executes the saved package's MIL program op by op in NumPy (see :mod:`pocketbert.formats.coreml.mil`)."""

    timing_meaningful = False
    runtime = "numpy"  # pocketbert's NumPy interpreter of the package: a numerics reference, not a CPU kernel
    kernel_family = "mil-reference"

    def __init__(
        self, path: Path, name: str = "coreml-mil", buckets: list[int] | None = None, task: Task | None = None
    ) -> None:
        super().__init__(path, name, buckets, task)
        self.interpreter = None

    def load_impl(self) -> None:
        from pocketbert.formats.coreml.mil.interpreter import MilInterpreter
        from pocketbert.formats.coreml.mil.package import load_program

        self.interpreter = MilInterpreter(load_program(self.path))

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        return self.interpreter.run(feed)

    def close_impl(self) -> None:
        self.interpreter = None


class CoreMLRunner(_PackageRunner):
    """Runs the package with Core ML (``MLModel.predict``, all compute units); macOS only."""

    runtime = "coremltools"

    def __init__(
        self, path: Path, name: str = "coreml", buckets: list[int] | None = None, task: Task | None = None
    ) -> None:
        super().__init__(path, name, buckets, task)
        self.model = None

    def load_impl(self) -> None:
        try:
            import coremltools as ct
        except ImportError:
            raise MissingDependencyError("coremltools", "coreml") from None
        try:
            self.model = ct.models.MLModel(str(self.path))
        except Exception as exc:
            raise PocketbertError(f"Core ML cannot load {self.path}: {str(exc).splitlines()[0]}") from exc

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        inputs = {name: np.ascontiguousarray(value, dtype=np.int32) for name, value in feed.items()}
        return self.model.predict(inputs)

    def close_impl(self) -> None:
        self.model = None


def coreml_available() -> bool:
    """True when Core ML can run models here (macOS with coremltools' native extension)."""
    if platform.system() != "Darwin":
        return False
    try:
        from coremltools.models import model as ct_model

        return ct_model._MLModelProxy is not None
    except Exception:
        return False


def make_runner(artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
    """The runner for a Core ML artifact: Core ML on macOS, the MIL reference interpreter elsewhere."""
    path = Path(out_dir) / artifact.path
    task = Task(artifact.metadata["task"]) if "task" in artifact.metadata else None
    shapes = {"buckets": artifact.sequence_buckets, "task": task}
    choice = os.environ.get(ENV_RUNNER, "").strip().lower()
    if choice not in ("", "mil", "coreml"):
        raise PocketbertError(f"{ENV_RUNNER}={choice!r} is not valid; use mil or coreml (or leave it unset)")
    if choice == "coreml" or (not choice and coreml_available()):
        if not coreml_available():
            raise PocketbertError(f"{ENV_RUNNER}=coreml needs macOS with Core ML; unset it to use the MIL runner")
        return CoreMLRunner(path, name=artifact.name, **shapes)
    return MilRunner(path, name=artifact.name, **shapes)


class MilProbeRunner(MilRunner):
    """:class:`MilRunner` whose outputs also hold every ``layer_norm`` output as ``probe_<i>`` (program order)."""

    def load_impl(self) -> None:
        super().load_impl()
        self._probes = [op.outputs[0][0] for op in self.interpreter.program.ops if op.type == "layer_norm"]

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        record: dict[str, np.ndarray] = {}
        out = dict(self.interpreter.run(feed, record=record))
        out.update({f"probe_{i}": record[name] for i, name in enumerate(self._probes)})
        return out
