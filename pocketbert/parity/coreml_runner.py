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

from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.export.artifact import Artifact
from pocketbert.parity.runner import Feed, Runner, as_float32

ENV_RUNNER = "POCKETBERT_COREML_RUNNER"


class MilRunner(Runner):
    """Executes the saved package's MIL program op by op in NumPy (see :mod:`pocketbert.parity.mil`)."""

    timing_meaningful = False

    def __init__(self, path: Path, name: str = "coreml-mil") -> None:
        super().__init__(name)
        self.path = Path(path)
        self.interpreter = None

    def load(self) -> None:
        from pocketbert.parity.mil.interpreter import MilInterpreter
        from pocketbert.parity.mil.package import load_program

        self.interpreter = MilInterpreter(load_program(self.path))

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        if self.interpreter is None:
            self.load()
        return as_float32(self.interpreter.run(feed))

    def close(self) -> None:
        self.interpreter = None


class CoreMLRunner(Runner):
    """Runs the package with Core ML (``MLModel.predict``, all compute units); macOS only."""

    def __init__(self, path: Path, name: str = "coreml") -> None:
        super().__init__(name)
        self.path = Path(path)
        self.model = None

    def load(self) -> None:
        try:
            import coremltools as ct
        except ImportError:
            raise MissingDependencyError("coremltools", "coreml") from None
        try:
            self.model = ct.models.MLModel(str(self.path))
        except Exception as exc:
            raise PocketbertError(f"Core ML cannot load {self.path}: {str(exc).splitlines()[0]}") from exc

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        if self.model is None:
            self.load()
        inputs = {name: np.ascontiguousarray(value, dtype=np.int32) for name, value in feed.items()}
        return as_float32(self.model.predict(inputs))

    def close(self) -> None:
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
    choice = os.environ.get(ENV_RUNNER, "").strip().lower()
    if choice not in ("", "mil", "coreml"):
        raise PocketbertError(f"{ENV_RUNNER}={choice!r} is not valid; use mil or coreml (or leave it unset)")
    if choice == "coreml" or (not choice and coreml_available()):
        if not coreml_available():
            raise PocketbertError(f"{ENV_RUNNER}=coreml needs macOS with Core ML; unset it to use the MIL runner")
        return CoreMLRunner(path, name=artifact.name)
    return MilRunner(path, name=artifact.name)
