"""LiteRT runner: a ``.tflite`` with one ``seq_<n>`` signature per sequence bucket, run by ai-edge-litert.

Signatures are static-shape batch-1 models, so a ``(B, S)`` feed runs row by row, each row in the smallest bucket
that holds its real tokens (:func:`pocketbert.core.buckets.run_bucketed`). Inputs are cast to int32; XNNPACK
(LiteRT's default CPU delegate) runs with ``threads`` threads.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.core.buckets import run_bucketed
from pocketbert.core.runner import Feed, Runner, as_float32
from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.tasks import Task


class LiteRtRunner(Runner):
    """Runs a bucketed ``.tflite`` in the ai-edge-litert interpreter.

    ``buckets`` are the artifact's sequence lengths (ascending); ``signatures`` maps each to its signature name.
    ``used_buckets`` records, per :meth:`infer` row, which bucket ran it (for tests and diagnostics).
    """

    runtime = "ai-edge-litert"
    preserve_all_tensors = False  # keep intermediate tensors readable (LiteRT then skips its default delegate)

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

    def load_impl(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise MissingDependencyError("ai-edge-litert", "tflite") from None
        try:
            with warnings.catch_warnings():  # the probe runner asks for every tensor on purpose
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
                self.interpreter = Interpreter(
                    model_path=str(self.path),
                    num_threads=self.threads,
                    experimental_preserve_all_tensors=self.preserve_all_tensors,
                )
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

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        return run_bucketed(feed, self.buckets, self.task, self._run_one)

    def close_impl(self) -> None:
        self._runners = {}
        self.interpreter = None


_LAYER_NORM = "torch.nn.modules.normalization.LayerNorm_"


def _module_of(name: str) -> str:
    """The module path of an op output named ``[fused paths;;]<module path>;<n>`` by litert-torch."""
    return name.rsplit(";;", 1)[-1].rsplit(";", 1)[0]


def layer_norm_outputs(path: Path) -> dict[str, tuple[int, list[int]]]:
    """Per signature: its subgraph index and the tensor index of every LayerNorm output, in op order.

    litert-torch decomposes a LayerNorm into ~12 ops named after its module path; its output is the last of
    them (the bias ``ADD``), except where the value is a signature output, which gets the signature's output name:
    there the op right after the module's ops, reading its last value, is the output.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(Path(path).read_bytes()))
    found: dict[str, tuple[int, list[int]]] = {}
    for sig in obj.signatureDefs:
        subgraph = obj.subgraphs[sig.subgraphIndex]
        names = [_module_of(subgraph.tensors[op.outputs[0]].name.decode()) for op in subgraph.operators]
        outputs: list[int] = []
        for i, op in enumerate(subgraph.operators):
            norm = names[i].rsplit("/", 1)[-1].startswith(_LAYER_NORM)
            if not norm or (i + 1 < len(names) and names[i + 1] == names[i]):
                continue  # not the last op of a LayerNorm module
            if flatbuffer_utils.opcode_to_name(obj, op.opcodeIndex) == "ADD":
                outputs.append(op.outputs[0])
            elif i + 1 < len(names) and op.outputs[0] in subgraph.operators[i + 1].inputs:
                outputs.append(subgraph.operators[i + 1].outputs[0])
        key = sig.signatureKey.decode() if isinstance(sig.signatureKey, bytes) else sig.signatureKey
        found[key] = (sig.subgraphIndex, outputs)
    return found


class LiteRtProbeRunner(LiteRtRunner):
    """:class:`LiteRtRunner` whose outputs also hold every LayerNorm output as ``probe_<i>`` (in op order).

    Intermediate tensors are only kept with ``experimental_preserve_all_tensors``, which runs LiteRT's built-in
    kernels instead of XNNPACK: the same graph and int8 weights, the reference kernels' rounding.
    """

    preserve_all_tensors = True

    def load_impl(self) -> None:
        super().load_impl()
        self._probes = layer_norm_outputs(self.path)

    def _run_one(self, bucket: int, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        out = super()._run_one(bucket, input_ids, attention_mask)
        subgraph, tensors = self._probes[self.signatures[bucket]]
        for i, tensor in enumerate(tensors):
            out[f"probe_{i}"] = np.asarray(self.interpreter.get_tensor(tensor, subgraph), dtype=np.float32)
        return out
