"""TFLite int8 with ai-edge-quantizer, applied to the fp32 ``.tflite`` that litert-torch wrote.

Why ai-edge-quantizer rather than litert-torch's PT2E ``quant_config``: it works on the converted flatbuffer, so one
fp32 conversion serves every precision (conversion dominates export time), it calibrates every signature of a
multi-signature model, and its recipes are per-op, which is what keeping lossy ops in float needs.

* ``dynamic``: the ``dynamic_wi8_afp32`` recipe — int8 weights per output channel for every supported op
  (fully connected layers, batch matmuls with constant operands, embedding lookups); activations stay float and
  XNNPACK quantizes them on the fly.
* ``static``: int8 weights per channel and int8 activations calibrated (min/max) on texts for the encoder's
  ``FULLY_CONNECTED`` layers (:data:`STATIC_OPS`, :data:`STATIC_SCOPE`), which XNNPACK runs with QS8 kernels, and
  int8 embedding tables. Everything else stays float, with quantize/dequantize around the integer islands:
  softmax, layer norm (mean/rsqrt), GELU, the attention ``BATCH_MATMUL`` of two activations (quantizing it took a
  tiny BERT classifier's worst-case logits cosine from 0.976 to 0.80), the FFN down-projection
  (:data:`STATIC_FLOAT_SCOPES`) and the task head. Quantizing every encoder op ("full integer", softmax and layer
  norm float or not) gave all-MiniLM-L6-v2 embeddings a worst-case cosine between 0.1 and 0.9: the ``-1e4``
  additive attention mask and the residual adds do not fit one int8 scale. :func:`op_precisions` reports which op types
  ended up int8 and which float.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.quantize.mixed import Unit, module_labels

DYNAMIC_RECIPE = "dynamic_wi8_afp32"
# Ops given int8 activations in the static scheme: the encoder's linear layers, which carry nearly all the FLOPs.
STATIC_OPS: tuple[str, ...] = ("FULLY_CONNECTED",)
# ...restricted to the encoder: ai-edge-quantizer matches a regex on each op's output tensor name, which litert-torch
# builds from the torch module path; the wrapper's encoder is ``pocketbert.wrapper._<Arch>Encoder`` at ``encoder``.
# The task head (pre-classifier, pooler, classifier, QA and token heads) stays float: its int8 output alone took the
# logits' worst-case cosine from 0.9999 to 0.77 on a tiny DistilBERT classifier, for a negligible share of FLOPs.
STATIC_SCOPE = r".*pocketbert\.wrapper\._\w+Encoder_encoder/.*"
# The FFN down-projection (BERT ``output.dense``, DistilBERT ``ffn.lin2``) stays float too: its input is the GELU
# output, whose outliers a per-tensor int8 scale cannot hold. On all-MiniLM-L6-v2 (real weights) quantizing it took
# the worst-case embedding cosine from 0.979 to 0.886. ``(;|$)`` ends the match at the module path, because
# litert-torch joins the paths of fused ops with ``;;`` and the next layer's Q/K/V name includes this block's path.
STATIC_FLOAT_SCOPES: tuple[str, ...] = (
    r".*(BertOutput_output/torch\.nn\.modules\.linear\.Linear_dense"
    r"|FFN_ffn/torch\.nn\.modules\.linear\.Linear_lin2)(;|$).*",
)
_PLUMBING = {"QUANTIZE", "DEQUANTIZE"}

Calibration = dict[str, list[dict[str, np.ndarray]]]


def _run_quantizer(model: bytes, configure: Any, calibration: Calibration | None = None) -> bytes:
    """Run ai-edge-quantizer on ``model`` (flatbuffer bytes) with a recipe set up by ``configure(quantizer)``."""
    from ai_edge_quantizer import quantizer

    from pocketbert.quiet import quiet_third_party

    quiet_third_party()
    try:
        qt = quantizer.Quantizer(bytearray(model))
        configure(qt)
        result = None
        if calibration is not None:
            result = qt.calibrate(calibration, num_threads=1)
        # its model modifier draws a tqdm bar for large models that no option reaches (tqdm writes to sys.stderr)
        with contextlib.redirect_stderr(io.StringIO()):
            quantized = qt.quantize(result, enable_progress_bar=False, enable_progress_report=False).quantized_model
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError with a long first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PocketbertError(f"ai-edge-quantizer could not quantize the TFLite model: {first}") from exc
    return bytes(quantized)


def _op_lists(model: bytes) -> dict[str, list[str]]:
    integer, floating = op_precisions(model)
    return {"int8_ops": integer, "float_ops": floating}


def _keep_float(qt: Any, stems: list[str]) -> None:
    """Recipe rules that leave the ops named by ``stems`` (see :func:`weight_units`) float.

    ai-edge-quantizer matches ``re.search`` on each op's scope (its output tensor name plus ``;``) and the last
    matching rule wins. litert-torch names an op output ``<stem>;<n>``, where the stem (module paths, fused ones
    joined by ``;;``) is the same in every signature and ``n`` differs, so a rule anchored at both ends on the
    stem and ``;<n>`` matches that op in every signature and nothing else.
    """
    from ai_edge_quantizer import qtyping

    for stem in stems:
        qt.update_quantization_recipe(
            regex=rf"^{re.escape(stem)};\d+;?$",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            algorithm_key="no_quantize",
        )


def quantize_dynamic_int8(model: bytes, float_ops: list[str] | tuple[str, ...] = ()) -> tuple[bytes, dict[str, Any]]:
    """int8 weights per channel, float activations (``dynamic_wi8_afp32``); returns the model and its metadata.

    ``float_ops`` (unit names from :func:`weight_units`) keep their weights float.
    """
    from ai_edge_quantizer import recipe

    def configure(qt: Any) -> None:
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        _keep_float(qt, list(float_ops))

    quantized = _run_quantizer(model, configure)
    return quantized, {
        "recipe": f"ai-edge-quantizer {DYNAMIC_RECIPE}",
        **_op_lists(quantized),
    }


_WEIGHT_OPS = ("FULLY_CONNECTED", "EMBEDDING_LOOKUP", "BATCH_MATMUL", "CONV_2D")
_SUFFIX = re.compile(r";\d+$")


def _attribute(segment: str) -> str:
    """``transformers.models.bert.modeling_bert.BertLayer_0`` -> ``0``: litert-torch names each step of a
    module path ``<qualified class>_<attribute>``."""
    cls = segment.rsplit(".", 1)[-1].lstrip("_")
    return cls.split("_", 1)[1] if "_" in cls else ""


def dotted_module(stem: str) -> str:
    """The last module path of an op's name stem, dotted: ``encoder.layer.0.attention.self.query``.

    Only a fallback label: litert-torch sometimes names fused ops after a neighbour (the key and value projections
    of a real BERT come out as ``…;;Linear_key;;…Linear_query``).
    """
    path = stem.rsplit(";;", 1)[-1]
    parts = [_attribute(s) for s in path.split("/")]
    parts = [("layer." + p if p.isdigit() else p) for p in parts if p and p != "inner"]
    return ".".join(parts) or path


def weight_units(model: bytes, modules: list[tuple[str, tuple[int, ...]]] | None = None) -> list[Unit]:
    """Every op of the first signature with a constant weight operand (fully connected layers, embedding tables),
    in op order, as mixed-precision units named by their output's stem (see :func:`_keep_float`).

    ``modules`` (PyTorch's weights in call order, :func:`~pocketbert.quantize.mixed.torch_weight_modules`) labels
    them by :func:`~pocketbert.quantize.mixed.module_labels`, since litert-torch's names can mislead; without a
    full match the labels fall back to :func:`dotted_module`.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    subgraph = obj.subgraphs[0]
    found: dict[str, tuple[int, ...]] = {}
    for op in subgraph.operators:
        if flatbuffer_utils.opcode_to_name(obj, op.opcodeIndex) not in _WEIGHT_OPS:
            continue
        tensors = [subgraph.tensors[i] for i in op.inputs if i >= 0]
        weights = [t for t in tensors if obj.buffers[t.buffer].data is not None or obj.buffers[t.buffer].offset > 1]
        name = subgraph.tensors[op.outputs[0]].name
        stem = _SUFFIX.sub("", name.decode() if isinstance(name, bytes) else name)
        if weights and stem not in found:
            found[stem] = tuple(int(d) for d in max(weights, key=lambda t: int(np.prod(t.shape))).shape)
    labels = module_labels(list(found.values()), modules) or [dotted_module(stem) for stem in found]
    return [Unit(stem, label) for stem, label in zip(found, labels)]


def quantize_static_int8(model: bytes, calibration: Calibration) -> tuple[bytes, dict[str, Any]]:
    """Full-integer matmuls: int8 weights per channel and int8 activations calibrated on ``calibration``.

    ``calibration`` maps each signature name to its samples (``input_ids`` / ``attention_mask`` int32 arrays of
    the signature's shape). Returns the model and its metadata (scheme, recipe, ops left float, text count).
    """
    from ai_edge_quantizer import qtyping

    if not calibration or not any(calibration.values()):
        raise PocketbertError("static int8 needs calibration texts, and none were given")

    def configure(qt: Any) -> None:
        for op in STATIC_OPS:
            qt.add_static_config(
                regex=STATIC_SCOPE,
                operation_name=qtyping.TFLOperationName(op),
                activation_num_bits=8,
                weight_num_bits=8,
                weight_granularity=qtyping.QuantGranularity.CHANNELWISE,
            )
            for scope in STATIC_FLOAT_SCOPES:  # later rules win in ai-edge-quantizer's recipe manager
                qt.update_quantization_recipe(scope, qtyping.TFLOperationName(op), algorithm_key="no_quantize")
        # the embedding tables: int8 weights, float output (as in the dynamic scheme); a gather loses nothing more
        qt.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP, num_bits=8)

    quantized = _run_quantizer(model, configure, calibration)
    integer, floating = op_precisions(quantized)
    if not set(STATIC_OPS) & set(integer):
        raise PocketbertError(
            "static int8 quantized no encoder layer (op names not as expected from litert-torch); use int8-dynamic"
        )
    return quantized, {
        "recipe": "ai-edge-quantizer static int8 weights and activations (min/max) for encoder "
        + ", ".join(STATIC_OPS)
        + " except the FFN down-projection; int8 embedding tables; task head float",
        "int8_ops": integer,
        "float_ops": floating,
    }


_FLOAT32 = 0  # schema TensorType.FLOAT32
_INT8 = 9  # schema TensorType.INT8


def op_precisions(model: bytes) -> tuple[list[str], list[str]]:
    """``(int8 op types, float op types)`` over every subgraph, quantize/dequantize plumbing left out.

    An op computes in int8 when it has an int8 operand (a weight in the dynamic scheme, weights and activations in
    the static one); it is float when it has none and a float32 output. A type can be in both lists, e.g. a
    ``BATCH_MATMUL`` of two activations stays float while one against a constant weight is int8.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    integer: set[str] = set()
    floating: set[str] = set()
    for subgraph in obj.subgraphs:
        for op in subgraph.operators:
            name = flatbuffer_utils.opcode_to_name(obj, op.opcodeIndex) or "UNKNOWN"
            if name in _PLUMBING:
                continue
            types = {subgraph.tensors[i].type for i in list(op.inputs) + list(op.outputs) if i >= 0}
            if _INT8 in types:
                integer.add(name)
            elif _FLOAT32 in types:
                floating.add(name)
    return sorted(integer), sorted(floating)
