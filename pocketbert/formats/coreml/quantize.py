"""Core ML int8 with ``coremltools.optimize.coreml``: weights per channel (W8), and W8A8 calibrated from texts.

* W8 (iOS16+): every weight with at least :data:`WEIGHT_THRESHOLD` elements is stored int8, linear symmetric, one
  scale per output channel; Core ML decompresses it (``constexpr_affine_dequantize`` on iOS16/17,
  ``constexpr_blockwise_shift_scale`` on iOS18) and computes in fp16. Biases and LayerNorm parameters stay fp16.
* W8A8 (iOS17+): the activations entering linear layers (``linear``, or the ANE layout's 1x1 ``conv``) are int8 too
  (a ``quantize``/``dequantize`` pair with a per-tensor range calibrated on texts), so each linear can run int8 x
  int8; then the weights are quantized as
  for W8. What stays fp16, and why (measured on all-MiniLM-L6-v2, min embedding cosine vs fp16 on padded
  batches): ``add`` ops — the residual stream carries BERT's outlier dimensions and the attention-mask add holds
  ``-1e4``, so int8 ranges over them leave no resolution (0.45 with adds, 0.73 with linear outputs quantized too);
  and the input of each feed-forward down-projection (the GELU output, also outlier-heavy: 0.96 with it int8,
  0.98 without). coremltools' ``linear_quantize_activations`` calibrates by running the model with
  ``MLModel.predict``, which only exists on macOS; pocketbert computes the same per-tensor min/max statistics
  with its MIL reference interpreter (:mod:`pocketbert.formats.coreml.mil`) and hands them to coremltools' own insertion
  pass, so W8A8 can be built on Linux.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.quantize.mixed import Unit, module_labels

WEIGHT_THRESHOLD = 512  # elements; smaller tensors (biases, LayerNorm gamma/beta) stay fp16
ACTIVATION_PASS = "compression::insert_prefix_quantize_dequantize_pair"  # quantizes the inputs of linear/add


def _weight_config(float_ops: list[str] | tuple[str, ...] = ()) -> Any:
    import coremltools.optimize.coreml as cto

    op_config = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD
    )
    return cto.OptimizationConfig(global_config=op_config, op_name_configs={name: None for name in float_ops})


def quantize_weights(
    mlmodel: Any, target: str, float_ops: list[str] | tuple[str, ...] = ()
) -> tuple[Any, dict[str, Any]]:
    """int8 per-channel weights of an fp16 ``mlprogram``; returns the new model and the manifest metadata.

    ``float_ops`` (MIL op names, see :func:`weight_units`) keep their weights fp16.
    """
    import coremltools.optimize.coreml as cto

    # An all-zero channel (the [PAD] row of the word embeddings) gets scale 0 and coremltools divides 0 / 0; the
    # stored scale 0 still decompresses that row to exactly 0, so the NumPy warning is noise for users.
    with np.errstate(invalid="ignore", divide="ignore"):
        quantized = cto.linear_quantize_weights(mlmodel, _weight_config(float_ops))
    op = "constexpr_blockwise_shift_scale" if target == "iOS18" else "constexpr_affine_dequantize"
    return quantized, {
        "weights": f"int8 linear symmetric per output channel ({op}), tensors >= {WEIGHT_THRESHOLD} elements",
        "activations": "fp16",
    }


def pad_to_bucket(feed: dict[str, np.ndarray], buckets: list[int], pad_id: int = 0) -> dict[str, np.ndarray]:
    """A ``(1, n)`` feed padded to the smallest bucket length that holds ``n`` tokens: ``input_ids`` with
    ``pad_id`` (what a single-input package reads as padding), the other arrays with 0."""
    from pocketbert.core.buckets import choose_bucket

    n = feed["input_ids"].shape[1]
    width = choose_bucket(n, buckets)
    return {
        name: np.pad(value, ((0, 0), (0, width - n)), constant_values=pad_id if name == "input_ids" else 0)
        for name, value in feed.items()
    }


PROJECTIONS = ("linear", "conv")  # a linear layer is a ``linear`` op, or a 1x1 ``conv`` in the ANE layout


def gelu_fed_linears(program: Any) -> list[str]:
    """Names of the linear-layer ops (``linear``, or 1x1 ``conv``) whose input is a GELU output (the feed-forward
    down-projections)."""
    from pocketbert.formats.coreml.mil.package import Ref

    gelu_outputs = {name for mil_op in program.ops if mil_op.type == "gelu" for name, _ in mil_op.outputs}
    return [
        mil_op.name
        for mil_op in program.ops
        if mil_op.type in PROJECTIONS
        and isinstance(mil_op.inputs.get("x"), Ref)
        and mil_op.inputs["x"].name in gelu_outputs
    ]


def activation_stats(
    mlmodel: Any, feeds: list[dict[str, np.ndarray]], pad_id: int | None = None
) -> tuple[dict[str, dict[str, float]], Any]:
    """Per-tensor ``{"rmin", "rmax"}`` of every input and intermediate value of ``mlmodel`` over ``feeds``, and the
    loaded :class:`~pocketbert.formats.coreml.mil.package.MilProgram`.

    The model is saved to a temporary package and run in the MIL reference interpreter, one feed at a time
    (``input_ids`` / ``attention_mask`` of shape ``(1, n)``, padded to a bucket with ``pad_id`` when the package has
    enumerated shapes, as the app pads; a single-input package reads only ``input_ids``); program outputs are left
    out, as coremltools does.
    """
    from pocketbert.formats.coreml.mil.interpreter import MilInterpreter
    from pocketbert.formats.coreml.mil.package import load_program

    with tempfile.TemporaryDirectory(prefix="pocketbert-calib-") as tmp:
        path = Path(tmp) / "model.mlpackage"
        mlmodel.save(str(path))
        interpreter = MilInterpreter(load_program(path))
    outputs = set(interpreter.program.outputs)
    enumerated = interpreter.program.shapes["input_ids"].enumerated
    buckets = sorted(shape[1] for shape in enumerated)
    stats: dict[str, dict[str, float]] = {}
    for feed in feeds:
        if buckets:  # enumerated shapes: pad as the app does, so padded positions count as on device
            feed = pad_to_bucket(feed, buckets, 0 if pad_id is None else pad_id)
        record: dict[str, np.ndarray] = {}
        interpreter.run(feed, record=record)
        for name, value in record.items():
            if name in outputs or value.size == 0 or not np.issubdtype(value.dtype, np.floating):
                continue
            lo, hi = float(np.min(value)), float(np.max(value))
            if name in stats:
                lo, hi = min(lo, stats[name]["rmin"]), max(hi, stats[name]["rmax"])
            stats[name] = {"rmin": lo, "rmax": hi}
    return stats, interpreter.program


def quantize_w8a8(
    mlmodel: Any, target: str, feeds: list[dict[str, np.ndarray]], pad_id: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """int8 activations (calibrated min/max on ``feeds``, padded with ``pad_id`` for enumerated shapes) and int8
    per-channel weights (iOS17+)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models.utils import _apply_graph_pass

    from pocketbert.errors import PocketbertError

    if not feeds:
        raise PocketbertError("int8-w8a8 needs calibration texts, and none were given")
    stats, program = activation_stats(mlmodel, feeds, pad_id)
    float_linears = gelu_fed_linears(program)
    config = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"),
        op_type_configs={"add": None},
        op_name_configs={name: None for name in float_linears},
    )
    graph_pass = PASS_REGISTRY[ACTIVATION_PASS]
    graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
    passes = [graph_pass, PASS_REGISTRY["common::dequantize_quantize_pair_elimination"]]
    spec_version = max(int(ct.target.iOS17), int(getattr(ct.target, target)))
    activated = _apply_graph_pass(mlmodel, passes, spec_version=spec_version, skip_model_load=True)
    quantized, info = quantize_weights(activated, target)
    info.update(
        activations=f"linear-layer inputs int8 symmetric per tensor, min/max calibrated on {len(feeds)} texts",
        calibration_texts=len(feeds),
        float_activations=f"adds and the {len(float_linears)} feed-forward down-projection inputs stay fp16",
    )
    return quantized, info


_WEIGHT_INPUTS = {"linear": "weight", "gather": "x", "matmul": "y", "conv": "weight"}


def weight_units(mlmodel: Any, modules: list[tuple[str, tuple[int, ...]]] | None = None) -> list[Unit]:
    """Every op of an ``mlprogram`` whose weight (a constant of >= :data:`WEIGHT_THRESHOLD` elements) int8 would
    quantize, in program order, as mixed-precision units named by MIL op name.

    MIL op names (``linear_5_cast_fp16``) do not say which layer they are: ``modules`` (PyTorch's weights in call
    order, :func:`~pocketbert.quantize.mixed.torch_weight_modules`) labels them (:func:`module_labels`) when
    every op matches one; otherwise the op names stay.
    """
    units: list[tuple[str, str, tuple[int, ...]]] = []
    for op in mlmodel._mil_program.functions["main"].operations:
        name = _WEIGHT_INPUTS.get(op.op_type)
        weight = op.inputs.get(name) if name else None
        if weight is None or weight.val is None or np.size(weight.val) < WEIGHT_THRESHOLD:
            continue
        shape = tuple(np.shape(weight.val))
        if op.op_type == "conv" and shape[2:] and all(k == 1 for k in shape[2:]):
            shape = shape[:2]  # a 1x1 convolution (the ANE layout's linear layer) has the Linear's (out, in)
        units.append((op.name, op.op_type, shape))
    labels = module_labels([shape for _, _, shape in units], modules) or [f"{kind} {name}" for name, kind, _ in units]
    return [Unit(name, label) for (name, _, _), label in zip(units, labels)]


def save_trial(base: Any, target: str, float_ops: list[str], path: Path) -> None:
    """W8 of ``base`` with ``float_ops`` left fp16, saved as a package at ``path`` (replaced): a budget trial."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    quantize_weights(base, target, float_ops)[0].save(str(path))
