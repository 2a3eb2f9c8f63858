"""The Core ML format: ``mlprogram`` packages in fp16, fp32, int8 weights (W8, iOS16+) and W8A8 (iOS17+).

Options: ``coreml_target`` (minimum deployment target), ``coreml_shapes`` (``enumerated``: one ``input_ids`` input
with a shape per bucket and the mask derived from the pad id, the default on every target; ``range``: both inputs
with flexible batch and sequence) and ``coreml_layout`` (``standard`` or ``ane``, the Neural Engine layout of
:mod:`pocketbert.formats.coreml.ane`). Every artifact records where Core ML will run it
(:mod:`pocketbert.formats.coreml.placement`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import Artifact, ExportSettings
from pocketbert.core.options import Option
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.formats.base import FLOAT, Built, Format, QuantScheme, ReportSection, embedded_metadata
from pocketbert.quantize.mixed import MixedPrecisionResult, Unit
from pocketbert.tasks import Task

MODEL_FILE = "model.mlpackage"
TARGETS = ("iOS16", "iOS17", "iOS18")
MIN_TARGET = {"none": "iOS16", "w8": "iOS16", "w8a8": "iOS17"}
TARGET = Option(
    "coreml_target",
    "str",
    "iOS16",
    f"Core ML minimum deployment target ({', '.join(TARGETS)})",
    owner="coreml",
    setting="coreml_target",
)
SHAPE_KINDS = ("enumerated", "range")
SHAPES = Option(
    "coreml_shapes",
    "str",
    "enumerated",
    "Core ML input shapes: enumerated (one input, input_ids of shape (1, bucket) per --buckets length, the "
    "attention mask derived from the pad id in the graph; every target) or range (input_ids and attention_mask "
    "with ranges for batch and sequence, for batch > 1; the Neural Engine runs only their default shape)",
    choices=SHAPE_KINDS,
    owner="coreml",
    setting="coreml_shapes",
)
LAYOUTS = ("standard", "ane")
LAYOUT = Option(
    "coreml_layout",
    "str",
    "standard",
    "Core ML graph layout: standard (the deployment wrapper) or ane (the Neural Engine layout after Apple's "
    "ml-ane-transformers: (B, C, 1, S) tensors, 1x1 convolutions, attention split per head)",
    choices=LAYOUTS,
    owner="coreml",
    setting="coreml_layout",
)


def target_index(target: str) -> int:
    """Position of ``target`` in :data:`TARGETS`, or a one-line error listing the valid targets."""
    if target not in TARGETS:
        raise PocketbertError(f"unknown Core ML deployment target {target!r}; valid: {', '.join(TARGETS)}")
    return TARGETS.index(target)


class CoreMLFormat(Format):
    """Core ML ``mlprogram``: fp16, fp32, int8 (weights, per channel) and int8-w8a8 (iOS17+)."""

    name = "coreml"
    title = "Core ML"
    extra = "coreml"
    requires = ("coremltools",)
    precisions = ("fp16", "fp32", "int8", "int8-w8", "int8-w8a8")
    float_precision = "fp16"
    file_name = MODEL_FILE
    runtime = "coremltools"
    runtime_label = "coreml"
    runtime_modules = ("coremltools",)
    libraries = ("coremltools",)
    app_preference = 10
    platforms = ("ios",)
    options = (TARGET, SHAPES, LAYOUT)
    order = 30

    def not_timed_reason(self) -> str | None:
        from pocketbert.formats.coreml.runner import coreml_available

        return None if coreml_available() else "Core ML runs only on macOS; not measurable here (never estimated)"

    def scheme_for(self, precision: str, settings: ExportSettings) -> QuantScheme:
        """``fp16`` / ``fp32`` compute in float; ``int8`` is W8 (``--int8-scheme static``: W8A8); ``int8-w8`` and
        ``int8-w8a8`` name the scheme."""
        if precision in ("fp16", "fp32"):
            return QuantScheme(FLOAT.kind, compute=precision)
        if precision == "int8":
            kind = "w8a8" if settings.int8_scheme == "static" else "w8"
        else:
            kind = precision.split("-", 1)[1]
        return QuantScheme(kind, compute="fp16")

    def validate(self, precision: str, scheme: QuantScheme, settings: ExportSettings) -> None:
        """One-line error when the deployment target is unknown or too old for ``scheme`` (W8A8 needs iOS17), or
        the shapes or layout are not ones this format builds."""
        for option, valid in ((SHAPES, SHAPE_KINDS), (LAYOUT, LAYOUTS)):
            if settings.get(option) not in valid:
                raise PocketbertError(f"{option.key} {settings.get(option)!r} is not valid; valid: {', '.join(valid)}")
        if settings.get(LAYOUT) == "ane" and settings.get(SHAPES) == "range":
            # the Neural Engine runs a range-shaped model at its default shape only, and coremltools 9 cannot load
            # back the per-head einsum with a flexible batch, so parity could not check such a package
            raise PocketbertError(
                "--coreml-layout ane needs enumerated shapes (the Neural Engine runs range shapes at their default "
                "only); drop --coreml-shapes range"
            )
        target = settings.get(TARGET)
        needed = MIN_TARGET[scheme.kind]
        if target_index(target) < target_index(needed):
            raise PocketbertError(
                f"Core ML precision {precision} ({scheme.kind}) needs deployment target {needed} or newer, "
                f"got {target}; pass --coreml-target {needed}"
            )

    def float_key(self, scheme: QuantScheme) -> str:
        return scheme.compute  # one export has one layout and one shape kind: the compute precision tells floats apart

    def convert(self, ctx: Any, scheme: QuantScheme) -> Any:
        from pocketbert.formats.coreml.export import convert_float

        return convert_float(ctx, scheme.compute)

    def budget_units(self, ctx: Any, base: Any, modules: list[tuple[str, tuple[int, ...]]]) -> list[Unit]:
        from pocketbert.formats.coreml.quantize import weight_units

        return weight_units(base, modules)

    def build_trial(self, ctx: Any, base: Any, float_units: list[str], path: Path) -> None:
        from pocketbert.formats.coreml.quantize import save_trial

        save_trial(base, ctx.settings.get(TARGET), float_units, path)

    def trial_runner(self, ctx: Any, path: Path) -> Runner:
        """Trial packages run in the MIL reference runner (the package's own program and fp16 numerics)."""
        from pocketbert.formats.coreml.export import enumerated_buckets, pad_token_id
        from pocketbert.formats.coreml.runner import MilRunner

        return MilRunner(path, buckets=enumerated_buckets(ctx), task=ctx.loaded.task, pad_id=pad_token_id(ctx))

    def write(
        self,
        ctx: Any,
        base: Any,
        precision: str,
        scheme: QuantScheme,
        mixed: MixedPrecisionResult | None,
        out_dir: Path,
        rel: Path,
    ) -> Built:
        from pocketbert.formats.coreml import quantize
        from pocketbert.formats.coreml.export import (
            artifact_metadata,
            describe,
            embedded_extra,
            enumerated_buckets,
            input_infos,
            pad_token_id,
            save_package,
        )
        from pocketbert.formats.coreml.placement import placement_of_package

        target = ctx.settings.get(TARGET)
        metadata = artifact_metadata(ctx, scheme.compute)
        if scheme.kind == "none":
            mlmodel = base
        elif scheme.kind == "w8":
            floats = [u["name"] for u in mixed.float_units] if mixed else []
            mlmodel, info = quantize.quantize_weights(base, target, floats)
            metadata.update(info)
        else:
            mlmodel, info = quantize.quantize_w8a8(base, target, ctx.calibration_feeds(), pad_token_id(ctx))
            metadata.update(info)
        extra = embedded_extra(ctx)
        if mixed is not None:
            extra["mixed_precision"] = json.dumps(mixed.to_dict(), sort_keys=True)
        describe(mlmodel, ctx, precision, embedded_metadata(ctx, precision, scheme, **extra))
        save_package(mlmodel, out_dir / rel)
        metadata["placement"] = placement_of_package(out_dir / rel)
        return Built(
            files=[],
            inputs=input_infos(ctx),
            outputs=ctx.output_infos({"B": "batch", "S": "sequence", **ctx.dims()}),
            metadata=metadata,
            sequence_buckets=enumerated_buckets(ctx),
        )

    def report_section(self, manifest: dict[str, Any], out_dir: Path) -> ReportSection | None:
        """Where Core ML will run each Core ML artifact: the compute plan on macOS, a static check elsewhere."""
        from pocketbert.formats.coreml.placement import report_table

        header, rows, flagged, notes = report_table(manifest, out_dir)
        if not rows:
            return None
        text = "Where Core ML will run each Core ML artifact (one row per check). " + " ".join(notes)
        return ReportSection("Core ML placement", text, header, rows, flagged)

    def make_runner(self, artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
        """Core ML on macOS, the MIL reference interpreter elsewhere (``POCKETBERT_COREML_RUNNER`` picks)."""
        from pocketbert.formats.coreml.runner import make_runner

        return make_runner(artifact, out_dir, threads)

    def make_probe_runner(self, path: Path, scratch: Path, task: Task, buckets: list[int] | None, name: str) -> Runner:
        """The MIL runner on every OS, since Core ML does not expose intermediate values."""
        from pocketbert.formats.coreml.runner import MilProbeRunner

        return MilProbeRunner(path, name=name, buckets=buckets, task=task)


FORMAT = CoreMLFormat()
