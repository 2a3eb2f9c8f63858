"""LiteRT runner: a ``.tflite`` with one ``seq_<n>`` signature per sequence bucket, run by ai-edge-litert.

Signatures are static-shape batch-1 models, so a ``(B, S)`` feed runs row by row, each row in the smallest bucket
that holds its real tokens (:func:`pocketbert.parity.buckets.run_bucketed`). Inputs are cast to int32; XNNPACK
(LiteRT's default CPU delegate) runs with ``threads`` threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.export.artifact import Artifact, read_manifest
from pocketbert.parity.buckets import run_bucketed
from pocketbert.parity.runner import Feed, Runner, as_float32
from pocketbert.tasks import Task


class LiteRtRunner(Runner):
    """Runs a bucketed ``.tflite`` in the ai-edge-litert interpreter.

    ``buckets`` are the artifact's sequence lengths (ascending); ``signatures`` maps each to its signature name.
    ``used_buckets`` records, per :meth:`infer` row, which bucket ran it (for tests and diagnostics).
    """

    def __init__(
        self,
        path: Path,
        task: Task,
        buckets: Sequence[int],
        signatures: dict[int, str] | None = None,
        name: str = "tflite",
        threads: int | None = None,
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.task = task
        self.buckets = list(buckets)
        self.signatures = signatures or {b: f"seq_{b}" for b in self.buckets}
        self.threads = threads
        self.interpreter: Any = None
        self._runners: dict[int, Any] = {}
        self.used_buckets: list[int] = []

    def load(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise MissingDependencyError("ai-edge-litert", "tflite") from None
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
            available = self.interpreter.get_signature_list()
        except Exception as exc:
            raise PocketbertError(f"LiteRT cannot load {self.path}: {str(exc).strip().splitlines()[0]}") from exc
        missing = [s for s in self.signatures.values() if s not in available]
        if missing:
            raise PocketbertError(
                f"{self.path} lacks signatures {', '.join(missing)} (has {', '.join(available)}); re-run the export"
            )
        self._runners = {b: self.interpreter.get_signature_runner(s) for b, s in self.signatures.items()}

    def _run_one(self, bucket: int, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        self.used_buckets.append(bucket)
        out = self._runners[bucket](
            input_ids=np.ascontiguousarray(input_ids, dtype=np.int32),
            attention_mask=np.ascontiguousarray(attention_mask, dtype=np.int32),
        )
        return as_float32(out)

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        if self.interpreter is None:
            self.load()
        return run_bucketed(feed, self.buckets, self.task, self._run_one)

    def close(self) -> None:
        self._runners = {}
        self.interpreter = None


def make_runner(artifact: Artifact, out_dir: Path, threads: int | None = None) -> LiteRtRunner:
    """Runner for a TFLite artifact of a manifest (its buckets and signature names come from the manifest)."""
    if not artifact.sequence_buckets:
        raise PocketbertError(f"artifact {artifact.name} records no sequence buckets; re-run the export")
    names = artifact.metadata.get("signatures") or {}
    signatures = {int(b): names.get(str(b), f"seq_{b}") for b in artifact.sequence_buckets}
    return LiteRtRunner(
        out_dir / artifact.path,
        task=Task(read_manifest(out_dir)["model"]["task"]),
        buckets=artifact.sequence_buckets,
        signatures=signatures,
        name=artifact.name,
        threads=threads,
    )
