"""Core ML export: the deployment wrapper, traced with ``torch.jit.trace``, to an ``mlprogram`` ``.mlpackage``.

Why the wrapper and ``jit.trace``: coremltools 9 cannot convert transformers 5's mask code (``new_ones`` inside
``create_bidirectional_mask``), with ``jit.trace`` or ``torch.export``; the wrapper computes the additive mask
itself (``-1e4``, fp16-safe). ``jit.trace`` of the wrapper converts with flexible shapes in one pass. The
``torch.export`` route did not (torch 2.13, coremltools 9): a program exported without ``Dim``s has static shapes
that coremltools refuses to pair with flexible inputs, and exporting with batch/sequence ``Dim``s stopped with a
``ConstraintViolationError``.

Inputs (``--coreml-shapes``), int32:

* ``enumerated`` (the default, every target): one input, ``input_ids`` of shape ``(1, bucket)`` for every
  ``sequence_buckets`` length (``ct.EnumeratedShapes``), the form the Neural Engine compiles ahead for. The graph
  derives the attention mask itself, ``input_ids != pad_token_id`` (:class:`SingleInputGraph`), which is why one
  input suffices and why Core ML before iOS 18, which allows enumerated shapes on one input only, takes it. Apps pad
  a text with the tokenizer's pad id to the smallest bucket that holds it
  (:func:`pocketbert.core.buckets.choose_bucket`); the artifact records ``sequence_buckets`` and the pad id.
* ``range``: ``input_ids`` and ``attention_mask`` with ranges (``ct.RangeDim``), ``batch`` in ``1..BATCH_MAX`` and
  ``sequence`` in ``1..max_length``, for batches of several texts; Core ML places a range-shaped model on the
  Neural Engine only at its default shape.

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

import torch

from pocketbert import __version__
from pocketbert.core.artifact import TensorInfo
from pocketbert.errors import PocketbertError
from pocketbert.formats.coreml.format import LAYOUT, SHAPES, TARGET
from pocketbert.tasks import INPUT_NAMES, output_specs

MODEL_FILE = "model.mlpackage"
BATCH_MAX = 64
AUTHOR = "pocketbert"
INPUT_DESCRIPTIONS = {
    "input_ids": "WordPiece token ids (int32), [CLS] first and [SEP] last; pad with 0 to the batch's length",
    "attention_mask": "1 for real tokens, 0 for padding (int32), same shape as input_ids",
}
MASK_FROM_PAD = "derived in the graph: input_ids != pad_token_id"
OUTPUT_DESCRIPTIONS = {
    "last_hidden_state": "token vectors (float32, batch x sequence x hidden)",
    "embedding": "mean-pooled, L2-normalised sentence embedding (float32, batch x hidden)",
    "logits": "unnormalised class scores (float32); labels in the metadata key 'labels'",
    "start_logits": "answer start scores per token (float32, batch x sequence)",
    "end_logits": "answer end scores per token (float32, batch x sequence)",
}


def enumerated(ctx: Any) -> bool:
    """True when the package takes one ``input_ids`` input with enumerated ``(1, bucket)`` shapes (the default)."""
    return ctx.settings.get(SHAPES) == "enumerated"


def enumerated_buckets(ctx: Any) -> list[int] | None:
    """The sequence buckets of an enumerated-shape package, ``None`` for ranges."""
    return list(ctx.settings.sequence_buckets) if enumerated(ctx) else None


def input_names(ctx: Any) -> tuple[str, ...]:
    """``("input_ids",)`` for enumerated shapes (the mask comes from the pad id), else both inputs."""
    return ("input_ids",) if enumerated(ctx) else INPUT_NAMES


def pad_token_id(ctx: Any) -> int | None:
    """The tokenizer's pad id, which an enumerated-shape graph compares ``input_ids`` with; ``None`` for ranges.

    A tokenizer without a pad token cannot make a single-input package: one line says to use ranges.
    """
    if not enumerated(ctx):
        return None
    pad = ctx.loaded.tokenizer.pad_token_id
    if pad is None:
        raise PocketbertError(
            "the tokenizer has no pad token, and a single-input Core ML package derives its attention mask from "
            "it; set one (tokenizer.pad_token) or pass --coreml-shapes range"
        )
    return int(pad)


def shapes_metadata(ctx: Any) -> dict[str, Any]:
    """How the inputs may be shaped, for the manifest: enumerated ``(1, bucket)`` shapes or ranges."""
    buckets = enumerated_buckets(ctx)
    if buckets:
        return {"kind": "enumerated", "batch": [1, 1], "sequence": buckets}
    return {"kind": "range", "batch": [1, BATCH_MAX], "sequence": [1, ctx.settings.max_length]}


def input_infos(ctx: Any) -> list[TensorInfo]:
    """The manifest's input descriptions: ``input_ids`` ``(1, sequence)``, or both inputs ``(batch, sequence)``."""
    if enumerated(ctx):
        return [TensorInfo("input_ids", "int32", [1, "sequence"])]
    return ctx.input_infos("int32", ["batch", "sequence"])


def mask_metadata(ctx: Any) -> dict[str, Any]:
    """Where the attention mask comes from and which pad id the apps pad with (manifest and package metadata)."""
    if enumerated(ctx):
        return {"attention_mask": MASK_FROM_PAD, "pad_token_id": pad_token_id(ctx)}
    return {"attention_mask": "input"}


def artifact_metadata(ctx: Any, compute: str) -> dict[str, Any]:
    """The manifest metadata every Core ML artifact carries (quantization adds its own keys)."""
    return {
        "deployment_target": ctx.settings.get(TARGET),
        "shapes": shapes_metadata(ctx),
        "layout": ctx.settings.get(LAYOUT),
        **mask_metadata(ctx),
        "task": ctx.loaded.task.value,
        "converter": "torch.jit.trace + coremltools.convert (mlprogram)",
        "compute_precision": compute,
    }


def embedded_extra(ctx: Any) -> dict[str, Any]:
    """What the package's user-defined metadata adds to :func:`pocketbert.formats.base.embedded_metadata`."""
    return {
        "deployment_target": ctx.settings.get(TARGET),
        "inputs": list(input_names(ctx)),
        "shapes": shapes_metadata(ctx),
        "layout": ctx.settings.get(LAYOUT),
        **mask_metadata(ctx),
    }


class SingleInputGraph(torch.nn.Module):
    """``forward(input_ids)`` around a two-input model (the deployment wrapper or its ANE layout): the attention
    mask is ``input_ids != pad_id``, compared in int32 so no id is ever rounded (an fp16 comparison would confuse
    ids above 2048 with their neighbours).

    Shapes: ``input_ids`` ``(B, S)`` int32; outputs those of the wrapped model.
    """

    def __init__(self, inner: torch.nn.Module, pad_id: int) -> None:
        super().__init__()
        self.inner = inner
        self.pad_id = int(pad_id)
        self.output_names = inner.output_names

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mask = (input_ids != self.pad_id).to(torch.int32)  # (B, S): 1 for tokens, 0 for padding
        return self.inner(input_ids, mask)


def graph_module(ctx: Any) -> Any:
    """The module to trace: the deployment wrapper, or its Neural Engine layout (``--coreml-layout ane``), with
    one ``input_ids`` input when the shapes are enumerated."""
    if ctx.settings.get(LAYOUT) == "ane":
        from pocketbert.formats.coreml.ane import AneDeploymentModel

        model = ctx.cached("coreml:ane-wrapper", lambda: AneDeploymentModel(ctx.loaded.model, ctx.loaded.task))
    else:
        model = ctx.wrapper()
    model = model.eval()
    if enumerated(ctx):
        return SingleInputGraph(model, pad_token_id(ctx)).eval()
    return model


def convert_float(ctx: Any, compute: str) -> Any:
    """Trace the graph module and convert it to an in-memory ``mlprogram`` computing in ``compute`` (fp16 or
    fp32), with the inputs :func:`input_names` lists."""
    import coremltools as ct
    import numpy as np

    module = graph_module(ctx)
    seq = min(16, ctx.settings.max_length)
    ids, mask = ctx.sample_inputs(batch=1, seq=seq, dtype=torch.int32)
    sample = (ids,) if enumerated(ctx) else (ids, mask)
    buckets = enumerated_buckets(ctx)
    if buckets and len(buckets) > 1:
        shape: Any = ct.EnumeratedShapes(shapes=[(1, b) for b in buckets], default=(1, buckets[-1]))
    elif buckets:  # one bucket: a fixed shape (coremltools wants at least two enumerated shapes)
        shape = ct.Shape((1, buckets[0]))
    else:
        longest = ctx.settings.max_length
        shape = ct.Shape((ct.RangeDim(1, BATCH_MAX, default=1), ct.RangeDim(1, longest, default=longest)))
    inputs = [ct.TensorType(name=name, shape=shape, dtype=np.int32) for name in input_names(ctx)]
    outputs = [ct.TensorType(name=name, dtype=np.float32) for name in module.output_names]
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(module, sample, check_trace=False)
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
    pad = pad_token_id(ctx)
    for name in input_names(ctx):
        text = INPUT_DESCRIPTIONS[name]
        if pad is not None:  # one input: padding is what tells the graph where the text ends
            text = (
                f"WordPiece token ids (int32), [CLS] first and [SEP] last, shape (1, bucket); pad with the pad id "
                f"{pad} to the bucket: the model masks every position holding it"
            )
        mlmodel.input_description[name] = text
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
