"""Core ML int8 with ``coremltools.optimize.coreml``: weights per channel (W8), and W8A8 calibrated from texts.

* W8 (iOS16+): every weight with at least :data:`WEIGHT_THRESHOLD` elements is stored int8, linear symmetric, one
  scale per output channel; Core ML decompresses it (``constexpr_affine_dequantize`` on iOS16/17,
  ``constexpr_blockwise_shift_scale`` on iOS18) and computes in fp16. Biases and LayerNorm parameters stay fp16.
* W8A8 (iOS17+): additionally inserts ``quantize``/``dequantize`` pairs on activations with ranges calibrated on
  texts, then quantizes the weights as for W8. coremltools' ``linear_quantize_activations`` calibrates by
  running the model with ``MLModel.predict``, which only exists on macOS; pocketbert computes the same per-tensor
  min/max statistics with its MIL reference interpreter (:mod:`pocketbert.parity.mil`) and hands them to
  coremltools' own insertion passes, so W8A8 can be built on Linux.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

WEIGHT_THRESHOLD = 512  # elements; smaller tensors (biases, LayerNorm gamma/beta) stay fp16
ACTIVATION_PASSES = (
    "compression::insert_prefix_quantize_dequantize_pair",
    "compression::insert_suffix_quantize_dequantize_pair",
)


def _weight_config() -> Any:
    import coremltools.optimize.coreml as cto

    op_config = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD
    )
    return cto.OptimizationConfig(global_config=op_config)


def quantize_weights(mlmodel: Any, target: str) -> tuple[Any, dict[str, Any]]:
    """int8 per-channel weights of an fp16 ``mlprogram``; returns the new model and the manifest metadata."""
    import coremltools.optimize.coreml as cto

    quantized = cto.linear_quantize_weights(mlmodel, _weight_config())
    op = "constexpr_blockwise_shift_scale" if target == "iOS18" else "constexpr_affine_dequantize"
    return quantized, {
        "scheme": "w8-per-channel",
        "weights": f"int8 linear symmetric per output channel ({op}), tensors >= {WEIGHT_THRESHOLD} elements",
        "activations": "fp16",
    }


def activation_stats(mlmodel: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Per-tensor ``{"rmin", "rmax"}`` of every input and intermediate value of ``mlmodel`` over ``feeds``.

    The model is saved to a temporary package and run in the MIL reference interpreter, one feed at a time
    (``input_ids`` / ``attention_mask`` of shape ``(1, n)``); program outputs are left out, as coremltools does.
    """
    from pocketbert.parity.mil.interpreter import MilInterpreter
    from pocketbert.parity.mil.package import load_program

    with tempfile.TemporaryDirectory(prefix="pocketbert-calib-") as tmp:
        path = Path(tmp) / "model.mlpackage"
        mlmodel.save(str(path))
        interpreter = MilInterpreter(load_program(path))
    outputs = set(interpreter.program.outputs)
    stats: dict[str, dict[str, float]] = {}
    for feed in feeds:
        record: dict[str, np.ndarray] = {}
        interpreter.run(feed, record=record)
        for name, value in record.items():
            if name in outputs or value.size == 0 or not np.issubdtype(value.dtype, np.floating):
                continue
            lo, hi = float(np.min(value)), float(np.max(value))
            if name in stats:
                lo, hi = min(lo, stats[name]["rmin"]), max(hi, stats[name]["rmax"])
            stats[name] = {"rmin": lo, "rmax": hi}
    return stats


def quantize_w8a8(mlmodel: Any, target: str, feeds: list[dict[str, np.ndarray]]) -> tuple[Any, dict[str, Any]]:
    """int8 activations (calibrated min/max on ``feeds``) and int8 per-channel weights (iOS17+)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models.utils import _apply_graph_pass

    from pocketbert.errors import PocketbertError

    if not feeds:
        raise PocketbertError("int8-w8a8 needs calibration texts, and none were given")
    stats = activation_stats(mlmodel, feeds)
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
    passes = []
    for name in ACTIVATION_PASSES:
        graph_pass = PASS_REGISTRY[name]
        graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    spec_version = max(int(ct.target.iOS17), int(getattr(ct.target, target)))
    activated = _apply_graph_pass(mlmodel, passes, spec_version=spec_version, skip_model_load=True)
    quantized, info = quantize_weights(activated, target)
    info.update(
        scheme="w8a8-per-channel",
        activations=f"int8 linear symmetric per tensor, min/max calibrated on {len(feeds)} texts",
        calibration_texts=len(feeds),
    )
    return quantized, info
