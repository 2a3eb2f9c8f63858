"""Core ML export: the deployment wrapper, traced with ``torch.jit.trace``, to an ``mlprogram`` ``.mlpackage``.

Why the wrapper and ``jit.trace``: coremltools 9 cannot convert transformers 5's mask code (``new_ones`` inside
``create_bidirectional_mask``), with ``jit.trace`` or ``torch.export``; the wrapper computes the additive mask
itself (``-1e4``, fp16-safe). ``jit.trace`` of the wrapper converts with flexible shapes in one pass. The
``torch.export`` route did not (torch 2.13, coremltools 9): a program exported without ``Dim``s has static shapes
that coremltools refuses to pair with flexible inputs, and exporting with batch/sequence ``Dim``s stopped with a
``ConstraintViolationError``.

Shapes: ``input_ids`` / ``attention_mask`` int32 ``(batch, sequence)``, flexible so a short text is cheap:

* iOS16/17: ranges (``ct.RangeDim``), ``batch`` in ``1..BATCH_MAX`` and ``sequence`` in ``1..max_length``; a text
  runs at its own length. Core ML before iOS 18 allows enumerated shapes on one input only, and both inputs must
  vary together, so a range is the only flexible choice there.
* iOS18+: enumerated shapes ``(1, bucket)`` for every ``sequence_buckets`` length (``ct.EnumeratedShapes``), the
  form the Neural Engine compiles ahead for; apps pad a text to the smallest bucket that holds it
  (:func:`pocketbert.parity.buckets.choose_bucket`), and the artifact records ``sequence_buckets``.

The artifact's ``metadata["shapes"]`` records either form.

Precisions (``--coreml-target`` sets the minimum deployment target, iOS16 by default):

* ``fp16``: fp16 compute, float32 outputs (coremltools' fp16 pass casts at the boundaries and clamps LayerNorm's
  epsilon 1e-12 to the smallest fp16 value, 6e-8, instead of letting it underflow to 0);
* ``fp32``: float32 compute (for reference and to measure the int8 size ratio);
* ``int8`` (= ``int8-w8``): weights int8, linear symmetric per output channel, fp16 compute (iOS16+);
* ``int8-w8a8``: int8 weights and int8 activations calibrated from texts (iOS17+); ``int8`` with
  ``--int8-scheme static`` means the same.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from pocketbert import __version__
from pocketbert.errors import PocketbertError
from pocketbert.export.artifact import Artifact
from pocketbert.export.base import ExportContext, Exporter
from pocketbert.quantize.mixed import MixedPrecisionResult
from pocketbert.tasks import INPUT_NAMES, output_specs

MODEL_FILE = "model.mlpackage"
BATCH_MAX = 64
TARGETS = ("iOS16", "iOS17", "iOS18")
ENUMERATED_MIN_TARGET = "iOS18"
MIN_TARGET = {"fp16": "iOS16", "fp32": "iOS16", "w8": "iOS16", "w8a8": "iOS17"}
AUTHOR = "pocketbert"
INPUT_DESCRIPTIONS = {
    "input_ids": "WordPiece token ids (int32), [CLS] first and [SEP] last; pad with 0 to the batch's length",
    "attention_mask": "1 for real tokens, 0 for padding (int32), same shape as input_ids",
}
OUTPUT_DESCRIPTIONS = {
    "last_hidden_state": "token vectors (float32, batch x sequence x hidden)",
    "embedding": "mean-pooled, L2-normalised sentence embedding (float32, batch x hidden)",
    "logits": "unnormalised class scores (float32); labels in the metadata key 'labels'",
    "start_logits": "answer start scores per token (float32, batch x sequence)",
    "end_logits": "answer end scores per token (float32, batch x sequence)",
}


def target_index(target: str) -> int:
    """Position of ``target`` in :data:`TARGETS`, or a one-line error listing the valid targets."""
    if target not in TARGETS:
        raise PocketbertError(f"unknown Core ML deployment target {target!r}; valid: {', '.join(TARGETS)}")
    return TARGETS.index(target)


def coreml_scheme(precision: str, int8_scheme: str) -> str:
    """``fp16`` / ``fp32`` / ``w8`` (weights-only int8) / ``w8a8`` for a Core ML precision name."""
    if precision in ("fp16", "fp32"):
        return precision
    if precision == "int8":
        return "w8a8" if int8_scheme == "static" else "w8"
    return precision.split("-", 1)[1]


def check_target(precision: str, scheme: str, target: str) -> None:
    """One-line error when ``target`` is too old for ``scheme`` (e.g. W8A8 needs iOS17)."""
    needed = MIN_TARGET[scheme]
    if target_index(target) < target_index(needed):
        raise PocketbertError(
            f"Core ML precision {precision} ({scheme}) needs deployment target {needed} or newer, "
            f"got {target}; pass --coreml-target {needed}"
        )


def enumerated_buckets(ctx: ExportContext) -> list[int] | None:
    """Sequence buckets when the target allows enumerated shapes on both inputs (iOS18+), else ``None``."""
    if target_index(ctx.settings.coreml_target) >= target_index(ENUMERATED_MIN_TARGET):
        return list(ctx.settings.sequence_buckets)
    return None


def shapes_metadata(ctx: ExportContext) -> dict[str, Any]:
    """How the inputs may be shaped, for the manifest: ranges or enumerated ``(1, bucket)`` shapes."""
    buckets = enumerated_buckets(ctx)
    if buckets:
        return {"kind": "enumerated", "batch": [1, 1], "sequence": buckets}
    return {"kind": "range", "batch": [1, BATCH_MAX], "sequence": [1, ctx.settings.max_length]}


def convert_float(ctx: ExportContext, compute: str) -> Any:
    """Trace the wrapper and convert it to an in-memory ``mlprogram`` computing in ``compute`` (fp16 or fp32)."""
    import coremltools as ct
    import numpy as np
    import torch

    wrapper = ctx.wrapper().eval()
    seq = min(16, ctx.settings.max_length)
    sample = ctx.sample_inputs(batch=1, seq=seq, dtype=torch.int32)
    buckets = enumerated_buckets(ctx)
    if buckets:
        shape: Any = ct.EnumeratedShapes(shapes=[(1, b) for b in buckets], default=(1, buckets[-1]))
    else:
        longest = ctx.settings.max_length
        shape = ct.Shape((ct.RangeDim(1, BATCH_MAX, default=1), ct.RangeDim(1, longest, default=longest)))
    inputs = [ct.TensorType(name=name, shape=shape, dtype=np.int32) for name in INPUT_NAMES]
    outputs = [ct.TensorType(name=name, dtype=np.float32) for name in wrapper.output_names]
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(wrapper, sample, check_trace=False)
            return ct.convert(
                traced,
                convert_to="mlprogram",
                inputs=inputs,
                outputs=outputs,
                minimum_deployment_target=getattr(ct.target, ctx.settings.coreml_target),
                compute_precision=ct.precision.FLOAT16 if compute == "fp16" else ct.precision.FLOAT32,
                skip_model_load=True,
            )
        except PocketbertError:
            raise
        except Exception as exc:  # the converter raises many types; the first line says what failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PocketbertError(f"coremltools could not convert the model: {first}") from exc


def describe(mlmodel: Any, ctx: ExportContext, precision: str, scheme: str, extra: dict[str, Any]) -> None:
    """Set author, license, version, descriptions and user-defined metadata (task, labels, precision)."""
    loaded = ctx.loaded
    mlmodel.author = AUTHOR
    mlmodel.license = "see the license of the source model"
    mlmodel.version = __version__
    task = loaded.task.value
    mlmodel.short_description = f"{loaded.architecture} {task} ({precision}), exported by pocketbert {__version__}"
    for name in INPUT_NAMES:
        mlmodel.input_description[name] = INPUT_DESCRIPTIONS[name]
    for spec in output_specs(loaded.task):
        text = OUTPUT_DESCRIPTIONS[spec.name]
        if spec.name == "logits" and loaded.labels:
            text += ": " + ", ".join(loaded.labels)
        mlmodel.output_description[spec.name] = text
    meta = {
        "task": task,
        "labels": json.dumps(loaded.labels),
        "precision": precision,
        "scheme": scheme,
        "source": loaded.origin,
        "pocketbert_version": __version__,
        "max_length": str(ctx.settings.max_length),
        "deployment_target": ctx.settings.coreml_target,
        **{k: str(v) for k, v in extra.items()},
    }
    mlmodel.user_defined_metadata.update(meta)


def save_package(mlmodel: Any, dst: Path) -> Path:
    """Save to a temporary sibling of ``dst`` and move it into place, so ``dst`` is never half-written."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".tmp-{dst.name}")  # coremltools insists on the .mlpackage suffix
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        mlmodel.save(str(tmp))
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


class CoreMLExporter(Exporter):
    """Core ML ``mlprogram``: fp16, fp32, int8 (weights, per channel) and int8-w8a8 (iOS17+)."""

    format = "coreml"
    precisions = ("fp16", "fp32", "int8", "int8-w8", "int8-w8a8")
    extra = "coreml"
    requires = ("coremltools",)

    def _float(self, ctx: ExportContext, compute: str) -> Any:
        key = f"coreml_{compute}"
        if key not in ctx.cache:
            ctx.cache[key] = convert_float(ctx, compute)
        return ctx.cache[key]

    def _budget_search(self, ctx: ExportContext, base: Any) -> MixedPrecisionResult:
        """The weights W8 keeps fp16 under ``--budget``: each trial package runs in the MIL reference runner (the
        package's own program and fp16 numerics)."""
        from pocketbert.parity.coreml_runner import MilRunner
        from pocketbert.quantize import coreml_int8

        target, buckets = ctx.settings.coreml_target, enumerated_buckets(ctx)
        return ctx.budget_search(
            units=lambda modules: coreml_int8.weight_units(base, modules),
            build=lambda floats, path: coreml_int8.save_trial(base, target, floats, path),
            runner=lambda path: MilRunner(path, buckets=buckets, task=ctx.loaded.task),
            filename=MODEL_FILE,
        )

    def export(self, ctx: ExportContext, precision: str, out_dir: Path) -> Artifact:
        from pocketbert.quantize import coreml_int8

        self.check_precision(precision)
        scheme = coreml_scheme(precision, ctx.settings.int8_scheme)
        check_target(precision, scheme, ctx.settings.coreml_target)
        extra: dict[str, Any] = {}
        metadata: dict[str, Any] = {
            "deployment_target": ctx.settings.coreml_target,
            "shapes": shapes_metadata(ctx),
            "task": ctx.loaded.task.value,
            "converter": "torch.jit.trace + coremltools.convert (mlprogram)",
        }
        if scheme in ("fp16", "fp32"):
            mlmodel = self._float(ctx, scheme)
            metadata["compute_precision"] = scheme
        else:
            base = self._float(ctx, "fp16")
            if scheme == "w8":
                mixed = self._budget_search(ctx, base) if ctx.settings.int8_budget else None
                floats = [u["name"] for u in mixed.float_units] if mixed else []
                mlmodel, info = coreml_int8.quantize_weights(base, ctx.settings.coreml_target, floats)
                if mixed:
                    info["mixed_precision"] = mixed.to_dict()
                    info["scheme"] += "-mixed" if floats else ""
                    extra["mixed_precision"] = json.dumps(mixed.to_dict(), sort_keys=True)
            else:
                mlmodel, info = coreml_int8.quantize_w8a8(base, ctx.settings.coreml_target, ctx.calibration_feeds())
            metadata.update(info)
            metadata["compute_precision"] = "fp16"
        describe(mlmodel, ctx, precision, metadata.get("scheme", scheme), extra)
        rel = Path(self.format) / precision / MODEL_FILE
        save_package(mlmodel, out_dir / rel)
        dims = ctx.dims()
        return Artifact(
            format=self.format,
            precision=precision,
            path=str(rel),
            scheme=metadata.get("scheme", scheme),
            inputs=ctx.input_infos("int32", ["batch", "sequence"]),
            outputs=ctx.output_infos({"B": "batch", "S": "sequence", **dims}),
            sequence_buckets=enumerated_buckets(ctx),
            metadata=metadata,
        )


EXPORTER = CoreMLExporter()
