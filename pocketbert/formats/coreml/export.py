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
  (:func:`pocketbert.core.buckets.choose_bucket`), and the artifact records ``sequence_buckets``.

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
from pocketbert.formats.coreml.format import TARGET, target_index
from pocketbert.tasks import INPUT_NAMES, output_specs

MODEL_FILE = "model.mlpackage"
BATCH_MAX = 64
ENUMERATED_MIN_TARGET = "iOS18"
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


def enumerated_buckets(ctx: Any) -> list[int] | None:
    """Sequence buckets when the target allows enumerated shapes on both inputs (iOS18+), else ``None``."""
    if target_index(ctx.settings.get(TARGET)) >= target_index(ENUMERATED_MIN_TARGET):
        return list(ctx.settings.sequence_buckets)
    return None


def shapes_metadata(ctx: Any) -> dict[str, Any]:
    """How the inputs may be shaped, for the manifest: ranges or enumerated ``(1, bucket)`` shapes."""
    buckets = enumerated_buckets(ctx)
    if buckets:
        return {"kind": "enumerated", "batch": [1, 1], "sequence": buckets}
    return {"kind": "range", "batch": [1, BATCH_MAX], "sequence": [1, ctx.settings.max_length]}


def convert_float(ctx: Any, compute: str) -> Any:
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
                minimum_deployment_target=getattr(ct.target, ctx.settings.get(TARGET)),
                compute_precision=ct.precision.FLOAT16 if compute == "fp16" else ct.precision.FLOAT32,
                skip_model_load=True,
            )
        except PocketbertError:
            raise
        except Exception as exc:  # the converter raises many types; the first line says what failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PocketbertError(f"coremltools could not convert the model: {first}") from exc


def describe(mlmodel: Any, ctx: Any, precision: str, embedded: dict[str, Any]) -> None:
    """Set author, license, version, descriptions and user-defined metadata: ``embedded`` (see
    :func:`pocketbert.formats.base.embedded_metadata`), strings as they are and other values as JSON."""
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
    meta = {key: value if isinstance(value, str) else json.dumps(value) for key, value in embedded.items()}
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
