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


def feed_ids(ids: np.ndarray, mask: np.ndarray, pad_id: int, name: str) -> np.ndarray:
    """``input_ids`` for a single-input package: every position ``mask`` marks as padding holds ``pad_id`` (the
    graph masks exactly those), real tokens unchanged. A real token equal to ``pad_id`` would be masked too, so it
    is a one-line error rather than a silently different result.

    Shapes: ``ids`` and ``mask`` ``(B, S)``; returns ``(B, S)`` of ``ids``' dtype.
    """
    real = np.asarray(mask) != 0
    clash = real & (np.asarray(ids) == pad_id)
    if clash.any():
        row, col = (int(i[0]) for i in np.nonzero(clash))
        raise PocketbertError(
            f"{name}: token {col} of sequence {row} is the pad id {pad_id}, which this single-input package "
            "masks as padding; drop it from the text, or export with --coreml-shapes range"
        )
    return np.where(real, ids, pad_id).astype(np.asarray(ids).dtype)


class _PackageRunner(Runner):
    """Shared by both Core ML runners: packages with enumerated shapes run each text in its bucket, and packages
    with one ``input_ids`` input get the pad id wherever the feed's ``attention_mask`` says padding.

    ``buckets`` are the artifact's ``sequence_buckets`` (``None`` for range shapes, where a feed runs as is);
    ``task`` tells which outputs are per token, to cut the bucket padding back off; ``pad_id`` is the id a
    single-input package compares ``input_ids`` with (read from the package's metadata when not given).
    """

    def __init__(
        self,
        path: Path,
        name: str,
        buckets: list[int] | None = None,
        task: Task | None = None,
        pad_id: int | None = None,
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.buckets = list(buckets) if buckets else None
        self.task = task
        self.pad_id = pad_id
        self.input_names: tuple[str, ...] = ()
        if self.buckets and task is None:
            raise PocketbertError(f"{name}: a package with sequence buckets needs its task to run; re-run the export")

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _package_inputs(self, inputs: list[str], metadata: dict[str, str]) -> None:
        """Record the package's inputs and, for a single-input package, the pad id it masks (its metadata's when
        the runner was not given one)."""
        self.input_names = tuple(inputs)
        if self.input_names != ("input_ids",):
            return
        if self.pad_id is None and "pad_token_id" in metadata:
            self.pad_id = int(metadata["pad_token_id"])
        if self.pad_id is None:
            raise PocketbertError(
                f"{self.name}: {self.path} takes input_ids alone but records no pad_token_id; re-run the export"
            )

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        if self.input_names == ("input_ids",):
            return self._predict({"input_ids": feed_ids(ids, mask, int(self.pad_id), self.name)})
        return self._predict({"input_ids": ids, "attention_mask": mask})

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        if not self.buckets:
            return as_float32(self._run(feed["input_ids"], feed["attention_mask"]))

        def run_one(bucket: int, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
            return self._run(ids, mask)

        return as_float32(run_bucketed(feed, self.buckets, self.task, run_one))


class MilRunner(_PackageRunner):
    """Executes the saved package's MIL program op by op in NumPy (see :mod:`pocketbert.formats.coreml.mil`)."""

    timing_meaningful = False
    runtime = "numpy"  # pocketbert's NumPy interpreter of the package: a numerics reference, not a CPU kernel
    kernel_family = "mil-reference"

    def __init__(
        self,
        path: Path,
        name: str = "coreml-mil",
        buckets: list[int] | None = None,
        task: Task | None = None,
        pad_id: int | None = None,
    ) -> None:
        super().__init__(path, name, buckets, task, pad_id)
        self.interpreter = None

    def load_impl(self) -> None:
        from pocketbert.formats.coreml.mil.interpreter import MilInterpreter
        from pocketbert.formats.coreml.mil.package import load_program

        program = load_program(self.path)
        self._package_inputs(list(program.inputs), program.metadata)
        self.interpreter = MilInterpreter(program)

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        return self.interpreter.run(feed)

    def close_impl(self) -> None:
        self.interpreter = None


COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")  # coremltools.ComputeUnit names


class CoreMLRunner(_PackageRunner):
    """Runs the package with Core ML (``MLModel.predict``); macOS only. ``compute_units`` is a
    ``coremltools.ComputeUnit`` name (:data:`COMPUTE_UNITS`), ``ALL`` by default."""

    runtime = "coremltools"

    def __init__(
        self,
        path: Path,
        name: str = "coreml",
        buckets: list[int] | None = None,
        task: Task | None = None,
        pad_id: int | None = None,
        compute_units: str = "ALL",
    ) -> None:
        super().__init__(path, name, buckets, task, pad_id)
        if compute_units not in COMPUTE_UNITS:
            raise PocketbertError(f"compute units {compute_units!r} are not valid; valid: {', '.join(COMPUTE_UNITS)}")
        self.compute_units = compute_units
        self.model = None

    def load_impl(self) -> None:
        try:
            import coremltools as ct
        except ImportError:
            raise MissingDependencyError("coremltools", "coreml") from None
        try:
            self.model = ct.models.MLModel(str(self.path), compute_units=getattr(ct.ComputeUnit, self.compute_units))
        except Exception as exc:
            raise PocketbertError(f"Core ML cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        description = self.model.get_spec().description
        self._package_inputs([f.name for f in description.input], dict(description.metadata.userDefined))

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
    pad = artifact.metadata.get("pad_token_id")
    shapes = {"buckets": artifact.sequence_buckets, "task": task, "pad_id": None if pad is None else int(pad)}
    choice = os.environ.get(ENV_RUNNER, "").strip().lower()
    if choice not in ("", "mil", "coreml"):
        raise PocketbertError(f"{ENV_RUNNER}={choice!r} is not valid; use mil or coreml (or leave it unset)")
    if choice == "coreml" or (not choice and coreml_available()):
        if not coreml_available():
            raise PocketbertError(f"{ENV_RUNNER}=coreml needs macOS with Core ML; unset it to use the MIL runner")
        return CoreMLRunner(path, name=artifact.name, **shapes)
    return MilRunner(path, name=artifact.name, **shapes)


class MilProbeRunner(MilRunner):
    """:class:`MilRunner` whose outputs also hold every ``layer_norm`` output as ``probe_<i>`` (program order),
    ``(B, S, C)`` in both layouts (the ANE layout's ``(B, C, 1, S)`` is transposed back)."""

    def load_impl(self) -> None:
        super().load_impl()
        self._probes = [op.outputs[0][0] for op in self.interpreter.program.ops if op.type == "layer_norm"]

    def _predict(self, feed: Feed) -> dict[str, np.ndarray]:
        record: dict[str, np.ndarray] = {}
        out = dict(self.interpreter.run(feed, record=record))
        for i, name in enumerate(self._probes):
            value = record[name]
            if value.ndim == 4 and value.shape[2] == 1:
                value = value[:, :, 0, :].transpose(0, 2, 1)  # (B, C, 1, S) -> (B, S, C)
            out[f"probe_{i}"] = value
        return out
