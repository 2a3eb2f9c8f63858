"""The TFLite (LiteRT) format: one ``seq_<n>`` signature per sequence bucket, fp32 and int8 (dynamic: int8 weights;
static: int8 weights and calibrated activations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketbert.core.artifact import Artifact
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.formats.base import Built, Format, QuantScheme, embedded_metadata
from pocketbert.quantize.mixed import MixedPrecisionResult, Unit
from pocketbert.tasks import Task

MODEL_FILE = "model.tflite"


def signatures_of(buckets: list[int]) -> dict[str, str]:
    """``{"32": "seq_32", ...}``: the signature holding each bucket, as the manifest records it."""
    from pocketbert.formats.tflite.export import signature_name

    return {str(b): signature_name(b) for b in buckets}


class TfliteFormat(Format):
    """TFLite fp32 and int8, one signature per bucket, run by LiteRT's interpreter (XNNPACK)."""

    name = "tflite"
    title = "TFLite (LiteRT)"
    extra = "tflite"
    requires = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")
    precisions = ("fp32", "int8", "int8-dynamic", "int8-static")
    file_name = MODEL_FILE
    runtime = "ai-edge-litert"
    runtime_label = "litert"
    runtime_modules = ("ai_edge_litert.interpreter",)
    libraries = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer")
    app_preference = 10
    platforms = ("android",)
    emulated_kernels = True
    order = 20

    def convert(self, ctx: Any, scheme: QuantScheme) -> bytes:
        from pocketbert.formats.tflite.export import convert_fp32

        return convert_fp32(ctx)

    def budget_units(self, ctx: Any, base: bytes, modules: list[tuple[str, tuple[int, ...]]]) -> list[Unit]:
        from pocketbert.formats.tflite.quantize import weight_units

        return weight_units(base, modules)

    def build_trial(self, ctx: Any, base: bytes, float_units: list[str], path: Path) -> None:
        from pocketbert.formats.tflite.quantize import quantize_dynamic_int8

        path.write_bytes(quantize_dynamic_int8(base, float_units)[0])

    def trial_runner(self, ctx: Any, path: Path) -> Runner:
        from pocketbert.formats.tflite.runner import LiteRtRunner

        buckets = list(ctx.settings.sequence_buckets)
        by_bucket = {int(b): s for b, s in signatures_of(buckets).items()}
        return LiteRtRunner(path, ctx.loaded.task, buckets, by_bucket)

    def write(
        self,
        ctx: Any,
        base: bytes,
        precision: str,
        scheme: QuantScheme,
        mixed: MixedPrecisionResult | None,
        out_dir: Path,
        rel: Path,
    ) -> Built:
        from pocketbert.formats.tflite import quantize
        from pocketbert.formats.tflite.export import calibration_by_signature, with_metadata

        samples, count = calibration_by_signature(ctx) if scheme.kind == "static" else ({}, 0)
        buckets = list(ctx.settings.sequence_buckets)
        signatures = signatures_of(buckets)
        mixed_precision = {"mixed_precision": mixed.to_dict()} if mixed else {}
        # Embedded before quantizing: ai-edge-quantizer keeps the metadata table, and its output may store large
        # weights after the flatbuffer (offset buffers), which a second rewrite of the flatbuffer would lose.
        embedded = embedded_metadata(
            ctx, precision, scheme, sequence_buckets=buckets, signatures=signatures, **mixed_precision
        )
        fp32 = with_metadata(base, embedded)
        if scheme.kind == "none":
            model, metadata = fp32, {"recipe": "litert-torch default conversion"}
        elif scheme.kind == "dynamic":
            float_ops = [u["name"] for u in mixed.float_units] if mixed else []
            model, metadata = quantize.quantize_dynamic_int8(fp32, float_ops)
        elif scheme.kind == "static":
            model, metadata = quantize.quantize_static_int8(fp32, samples)
            metadata["calibration_texts"] = count
        else:
            raise PocketbertError(f"unknown int8 scheme {scheme.kind!r}; valid: dynamic, static")
        metadata["signatures"] = signatures
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / rel).write_bytes(model)
        return Built(
            files=[str(rel)],
            inputs=ctx.input_infos("int32", [1, "bucket"]),
            outputs=ctx.output_infos({"B": 1, "S": "bucket", **ctx.dims()}),
            metadata=metadata,
            sequence_buckets=buckets,
        )

    def make_runner(self, artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
        from pocketbert.core.artifact import read_manifest
        from pocketbert.formats.tflite.runner import LiteRtRunner

        if not artifact.sequence_buckets:
            raise PocketbertError(f"artifact {artifact.name} records no sequence buckets; re-run the export")
        names = artifact.metadata.get("signatures") or {}
        signatures = {int(b): names.get(str(b), f"seq_{b}") for b in artifact.sequence_buckets}
        return LiteRtRunner(
            out_dir / artifact.path,
            task=Task(read_manifest(out_dir)["model"]["task"]),
            buckets=artifact.sequence_buckets,
            signatures=signatures,
            name=artifact.name,
            threads=threads,
        )

    def make_probe_runner(self, path: Path, scratch: Path, task: Task, buckets: list[int] | None, name: str) -> Runner:
        from pocketbert.formats.tflite.runner import LiteRtProbeRunner

        if not buckets:
            raise PocketbertError(f"{name} records no sequence buckets; re-run the export")
        return LiteRtProbeRunner(path, task=task, buckets=buckets, name=name)


FORMAT = TfliteFormat()
