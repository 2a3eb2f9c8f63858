"""ONNX int8 with ONNX Runtime's quantizer.

Why a pre-processing pass: ORT's quantizers run symbolic shape inference first, and on graphs from the dynamo
exporter it stops ("Incomplete symbolic shape inference"): the position-embedding slice ``weight[:S]`` gets a fresh
symbolic length that ORT cannot prove equal to the input's ``sequence`` axis, so the ``Add`` that joins them has an
unknown shape. :func:`preprocess` runs ORT's own ``quant_pre_process`` with ``auto_merge=True``, which merges such
equal-but-differently-named dims, and with ORT's basic (portable, ONNX-standard) graph optimisations. The quantizers
then see a fully shaped graph.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.formats.onnx.weight_recipes import WeightRecipe
from pocketbert.quantize.mixed import Unit

DYNAMIC_OPS = ("MatMul", "Gather", "Attention")  # every weight: linear layers, embedding tables, fused QKV
STATIC_OPS = ("MatMul",)  # Softmax, LayerNorm, Gelu, Add and the embedding gather stay float


def _external(path: Path) -> bool:
    return path.with_name(path.name + ".data").exists()


def preprocess(src: Path, dst: Path) -> Path:
    """Shape-complete, optimised copy of ``src`` at ``dst`` (see the module docstring for why)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).absolute(), Path(dst).absolute()  # before the chdir below
    dst.parent.mkdir(parents=True, exist_ok=True)
    # ORT's shape inference dumps sym_shape_infer_temp.onnx into the working directory when it gives up:
    # run it from the destination's directory so a failure never litters the user's folder.
    try:
        with contextlib.chdir(dst.parent):
            quant_pre_process(
                str(src),
                str(dst),
                skip_optimization=False,
                skip_onnx_shape=False,
                skip_symbolic_shape=False,
                auto_merge=True,
                save_as_external_data=_external(src),
            )
    except Exception as exc:
        raise PocketbertError(f"ONNX pre-processing for quantization failed: {str(exc).splitlines()[0]}") from exc
    return dst


def _float_ops(path: Path, quantized_types: tuple[str, ...]) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    skip = set(quantized_types) | {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
    return sorted({n.op_type for n in model.graph.node if n.op_type not in skip and not n.op_type.endswith("Integer")})


def weight_units(model_path: Path, names_from: Path | None = None) -> list[Unit]:
    """Every op with a constant weight (MatMul B, fused Attention QKV, Gather table) as a mixed-precision unit.

    ``module`` comes from the dynamo exporter's ``namespace`` metadata (e.g. ``encoder.layer.0.output.dense``),
    read from ``names_from`` (the unfused export) when given: ORT's optimizer keeps node names but drops metadata.
    """
    import onnx

    from pocketbert.formats.onnx.export import node_module

    labels: dict[str, str] = {}
    if names_from is not None:
        original = onnx.load(str(names_from), load_external_data=False)
        labels = {n.name: node_module(n) for n in original.graph.node}
    model = onnx.load(str(model_path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    units = []
    for node in model.graph.node:
        weight = {"MatMul": 1, "Attention": 1, "Gather": 0}.get(node.op_type)
        weight = node.input[weight] if weight is not None else None
        if weight is None or weight not in weights:
            continue
        fallback = f"fused attention {node.name}" if node.op_type == "Attention" else node_module(node)
        units.append(Unit(node.name, labels.get(node.name, fallback)))
    return units


def quantize_plain(
    pre: Path, dst: Path, recipe: WeightRecipe, *, per_channel: bool = True, exclude: list[str] | None = None
) -> None:
    """ORT dynamic int8 of a shape-complete graph ``pre`` (see :func:`preprocess`) into ``dst``, every weight op
    but the node names in ``exclude``, weights stored as ``recipe`` says."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(pre),
        str(dst),
        per_channel=per_channel,
        reduce_range=recipe.reduce_range,
        weight_type=getattr(QuantType, recipe.weight_type),
        op_types_to_quantize=list(DYNAMIC_OPS),
        nodes_to_exclude=list(exclude or []),
        use_external_data_format=_external(pre),
        extra_options={"MatMulConstBOnly": True},
    )


def dynamic_metadata(dst: Path, recipe: WeightRecipe) -> dict[str, Any]:
    """What the manifest records of a dynamic int8 graph at ``dst``: the op types quantized and left float, and
    how its weights are stored (``recipe``: name, description, why)."""
    return {
        "quantized_ops": list(DYNAMIC_OPS),
        "weights": {"recipe": recipe.name, "description": recipe.description, "why": recipe.why},
        "float_ops": _float_ops(dst, DYNAMIC_OPS),
    }


class _FeedReader:
    """ORT CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._iter = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iter, None)


def quantize_static_int8(pre: Path, dst: Path, feeds: list[dict[str, Any]]) -> dict[str, Any]:
    """QDQ int8 of a shape-complete graph ``pre`` (see :func:`preprocess`): MatMul weights per channel and their
    input activations calibrated (min/max) on ``feeds``.

    ``feeds`` are ``{"input_ids", "attention_mask"}`` int64 arrays of shape ``(1, n)``, one per calibration text.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not feeds:
        raise PocketbertError("static int8 needs calibration texts, and none were given")
    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(pre),
        str(dst),
        _FeedReader(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(STATIC_OPS),
        calibrate_method=CalibrationMethod.MinMax,
        use_external_data_format=_external(pre),
        extra_options={"MatMulConstBOnly": True, "ActivationSymmetric": False, "WeightSymmetric": True},
    )
    return {
        "quantized_ops": list(STATIC_OPS),
        "float_ops": _float_ops(dst, STATIC_OPS),
        "calibration_texts": len(feeds),
    }
