"""ONNX Runtime runner (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.core.runner import Feed, Runner, as_float32
from pocketbert.errors import MissingDependencyError, PocketbertError

_NP_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OnnxRunner(Runner):
    """Runs an ``.onnx`` file in ONNX Runtime with ``threads`` intra-op threads (ORT's default when ``None``)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, name: str = "onnx", threads: int | None = None) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.threads = threads
        self.session = None

    def load_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime", "onnx") from None
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise PocketbertError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        self._inputs = {i.name: _NP_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        ort_feed = {name: np.ascontiguousarray(feed[name], dtype=dtype) for name, dtype in self._inputs.items()}
        values = self.session.run(self._outputs, ort_feed)
        return as_float32(dict(zip(self._outputs, values)))

    def close_impl(self) -> None:
        self.session = None


PROBE_OPS = ("LayerNormalization", "SkipLayerNormalization")  # SkipLayerNormalization: ORT-fused graphs


def with_probes(path: Path, dst: Path) -> Path:
    """A copy of an ONNX model that also outputs every layer norm's output, in graph order, as ``probe_<i>``
    (see :mod:`pocketbert.parity.localize`): an ``Identity`` per probe, so the value names stay as they were."""
    import onnx

    model = onnx.load(str(path))
    values = [node.output[0] for node in model.graph.node if node.op_type in PROBE_OPS]
    for i, value in enumerate(values):
        model.graph.node.append(onnx.helper.make_node("Identity", [value], [f"probe_{i}"], name=f"probe_{i}"))
        model.graph.output.append(onnx.helper.make_tensor_value_info(f"probe_{i}", onnx.TensorProto.FLOAT, None))
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=model.ByteSize() > 1_800_000_000)
    return dst
