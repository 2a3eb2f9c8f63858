"""TFLite (LiteRT) export: the deployment wrapper through litert-torch (torch.export, no TensorFlow), then int8.

LiteRT shapes are static, so the model is converted once per sequence-length bucket, each bucket a named signature
``seq_<n>`` of one ``.tflite`` file (the weights are stored once). Every signature takes int32 ``input_ids`` and
``attention_mask`` of shape ``(1, n)`` and returns the task's outputs by name (``logits``, ``embedding``, …): the
wrapper returns a dict, and litert-torch names signature outputs after the dict keys. The app picks the smallest
bucket that holds its text.

The file carries a ``pocketbert`` metadata entry (UTF-8 JSON: task, labels, input names, buckets, precision) in the
flatbuffer's standard ``metadata`` table, readable by any flatbuffer reader without TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.tasks import INPUT_NAMES

MODEL_FILE = "model.tflite"
METADATA_NAME = "pocketbert"
_PROGRESS_ENV = "LITERT_TORCH_SHOW_PROGRESS"


def signature_name(bucket: int) -> str:
    """The signature holding sequence length ``bucket``, e.g. ``seq_128``."""
    return f"seq_{bucket}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class NamedOutputs:
    """Builds a module returning ``{output name: tensor}`` from the deployment wrapper, so signatures name outputs."""

    @staticmethod
    def wrap(wrapper: Any) -> Any:
        import torch

        class _Named(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
                return dict(zip(self.inner.output_names, self.inner(input_ids, attention_mask)))

        return _Named(wrapper).eval()


@contextlib.contextmanager
def _no_progress() -> Iterator[None]:
    """Hide litert-torch's progress lines (it prints them to stdout) for the duration of a conversion."""
    old = os.environ.get(_PROGRESS_ENV)
    os.environ[_PROGRESS_ENV] = "n"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_PROGRESS_ENV, None)
        else:
            os.environ[_PROGRESS_ENV] = old


def convert_fp32(ctx: Any) -> bytes:
    """Convert the wrapper to an fp32 ``.tflite`` (flatbuffer bytes) with one ``seq_<n>`` signature per bucket."""
    import warnings

    import litert_torch
    import torch

    module = NamedOutputs.wrap(ctx.wrapper())
    converter = litert_torch.Converter()
    for bucket in ctx.settings.sequence_buckets:
        ids, mask = ctx.sample_inputs(batch=1, seq=bucket, dtype=torch.int32)
        converter.signature(signature_name(bucket), module, sample_kwargs={"input_ids": ids, "attention_mask": mask})
    with _no_progress(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            edge = converter.convert(strict_export=False)
        except Exception as exc:  # torch.export and the MLIR converter raise many types
            if _is_export_error(exc):
                stage, hint = (
                    "torch.export could not trace the model",
                    "make forward free of data-dependent control flow",
                )
            else:
                stage, hint = "LiteRT conversion failed", "the model uses an op litert-torch cannot lower; replace it"
            raise PocketbertError(f"{stage} for TFLite: {_first_line(exc)}; {hint}") from exc
        return bytes(edge.model_content())


def _is_export_error(exc: BaseException) -> bool:
    """True when the failure came from torch.export (tracing) rather than from lowering to TFLite."""
    names = {type(e).__module__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    return any(n.startswith(("torch._dynamo", "torch.export", "torch._export", "torch.fx")) for n in names)


def with_metadata(model: bytes, metadata: dict[str, Any]) -> bytes:
    """``model`` with a ``pocketbert`` entry (UTF-8 JSON) in the flatbuffer's ``metadata`` table, replacing any."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    obj.metadata = [m for m in (obj.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(obj.buffers) - 1
    obj.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``pocketbert`` metadata entry of a ``.tflite`` file (``{}`` when it has none)."""
    from ai_edge_litert.tools import flatbuffer_utils

    raw = Path(path).read_bytes()
    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(raw))
    for entry in obj.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            buffer = obj.buffers[entry.buffer]
            # ai-edge-quantizer may store a buffer after the flatbuffer: ``offset``/``size`` bytes into the file
            data = bytes(buffer.data) if buffer.data is not None else raw[buffer.offset : buffer.offset + buffer.size]
            return json.loads(data.decode())
    return {}


def calibration_by_signature(ctx: Any) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Calibration samples for every signature, and the number of texts.

    Every text is tokenized for every bucket (truncated at the bucket, zero-padded to it), so each signature sees
    the whole text set at its own shape: short texts with padding in the long buckets, truncated long texts in the
    short ones. Arrays are int32 ``(1, bucket)``.
    """
    import numpy as np

    texts = ctx.calibration_texts()
    if not texts:
        raise PocketbertError("static int8 needs calibration texts, and the calibration file has none")
    samples: dict[str, list[dict[str, Any]]] = {}
    for bucket in ctx.settings.sequence_buckets:
        enc = ctx.loaded.tokenizer(texts, padding="max_length", truncation=True, max_length=bucket, return_tensors="np")
        samples[signature_name(bucket)] = [
            {name: enc[name][i : i + 1].astype(np.int32) for name in INPUT_NAMES} for i in range(len(texts))
        ]
    return samples, len(texts)
