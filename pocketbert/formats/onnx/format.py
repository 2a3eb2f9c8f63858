"""The ONNX format: fp32 with dynamic ``batch`` / ``sequence`` axes and int8 (dynamic per channel, or static QDQ)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import Artifact, ExportSettings
from pocketbert.core.options import Option
from pocketbert.core.runner import Runner
from pocketbert.formats.base import Built, Format, QuantScheme, embedded_metadata
from pocketbert.formats.onnx.weight_recipes import DEFAULT_WEIGHT_RECIPE, WEIGHT_RECIPES
from pocketbert.quantize.mixed import MixedPrecisionResult, Unit
from pocketbert.tasks import Task

MODEL_FILE = "model.onnx"
OPSET = Option("opset", "int", 18, "ONNX opset (>= 17)", owner="onnx", setting="opset", minimum=17)
FUSION = Option(
    "onnx_fusion",
    "bool",
    False,
    "ONNX int8: apply ORT's transformer fusions first (QAttention); measure before you keep it",
    owner="onnx",
    setting="onnx_fusion",
)
WEIGHTS = Option(
    "onnx_int8_weights",
    "str",
    DEFAULT_WEIGHT_RECIPE,
    "ONNX int8 weight storage: u8 (default; exact on every CPU), s8 (fastest on x86 VNNI, saturates on x86 without "
    "VNNI), s7 (reduce_range); see docs/kernels.md",
    choices=tuple(sorted(WEIGHT_RECIPES)),
    owner="onnx",
    setting="onnx_int8_weights",
)


@dataclass
class OnnxBase:
    """The graphs one export's ONNX artifacts start from: the fp32 export and, for int8, its shape-complete
    (optionally fused) copy that ORT's quantizers read."""

    fp32: Path
    pre: Path | None = None
    ort_fusions: dict[str, Any] | None = None


class OnnxFormat(Format):
    """ONNX fp32 and int8 (dynamic per-channel, or static QDQ calibrated from texts), run by ONNX Runtime."""

    name = "onnx"
    title = "ONNX"
    extra = "onnx"
    requires = ("onnx", "onnxruntime", "onnxscript")
    precisions = ("fp32", "int8", "int8-dynamic", "int8-static")
    file_name = MODEL_FILE
    runtime = "onnxruntime"
    runtime_label = "onnxruntime"
    runtime_modules = ("onnxruntime",)
    libraries = ("onnx", "onnxruntime", "onnxscript")
    app_preference = 30
    platforms = ("android",)
    emulated_kernels = True
    options = (OPSET, FUSION, WEIGHTS)
    order = 10

    def scheme_for(self, precision: str, settings: ExportSettings) -> QuantScheme:
        scheme = super().scheme_for(precision, settings)
        if scheme.kind == "static":
            return QuantScheme("static", qdq=True)
        if scheme.kind == "dynamic":
            return QuantScheme("dynamic", fused=bool(settings.get(FUSION)))
        return scheme

    def validate(self, precision: str, scheme: QuantScheme, settings: ExportSettings) -> None:
        OPSET.check(settings.get(OPSET))
        WEIGHTS.check(settings.get(WEIGHTS))

    def float_key(self, scheme: QuantScheme) -> str:
        return "fp32" if not scheme.is_int8 else ("pre-fused" if scheme.fused else "pre")

    def convert(self, ctx: Any, scheme: QuantScheme) -> OnnxBase:
        from pocketbert.formats.onnx.export import export_fp32

        fp32 = ctx.cached("onnx:fp32-graph", lambda: export_fp32(ctx, ctx.scratch / "onnx-fp32" / MODEL_FILE))
        if not scheme.is_int8:
            return OnnxBase(fp32)
        from pocketbert.formats.onnx.fusion import fuse_transformer
        from pocketbert.formats.onnx.quantize import preprocess

        src, fusions = fp32, None
        if scheme.fused:
            src = ctx.scratch / "onnx-fused" / MODEL_FILE
            fusions = fuse_transformer(fp32, src, ctx.loaded.num_heads, ctx.loaded.hidden_size)
        key = self.float_key(scheme)
        return OnnxBase(fp32, preprocess(src, ctx.scratch / f"onnx-{key}" / MODEL_FILE), fusions)

    def budget_units(self, ctx: Any, base: OnnxBase, modules: list[tuple[str, tuple[int, ...]]]) -> list[Unit]:
        from pocketbert.formats.onnx.quantize import weight_units

        return weight_units(base.pre, names_from=base.fp32)

    def build_trial(self, ctx: Any, base: OnnxBase, float_units: list[str], path: Path) -> None:
        from pocketbert.formats.onnx.quantize import quantize_plain

        quantize_plain(base.pre, path, WEIGHT_RECIPES[ctx.settings.get(WEIGHTS)], exclude=float_units)

    def trial_runner(self, ctx: Any, path: Path) -> Runner:
        from pocketbert.formats.onnx.runner import OnnxRunner

        return OnnxRunner(path)

    def write(
        self,
        ctx: Any,
        base: OnnxBase,
        precision: str,
        scheme: QuantScheme,
        mixed: MixedPrecisionResult | None,
        out_dir: Path,
        rel: Path,
    ) -> Built:
        from pocketbert.formats.onnx import quantize
        from pocketbert.formats.onnx.export import save_with_metadata

        metadata: dict[str, Any] = {}
        source = base.fp32
        if scheme.is_int8:
            source = ctx.scratch / f"onnx-{precision}" / MODEL_FILE
            if scheme.kind == "dynamic":
                recipe = WEIGHT_RECIPES[ctx.settings.get(WEIGHTS)]
                floats = [u["name"] for u in mixed.float_units] if mixed else []
                quantize.quantize_plain(base.pre, source, recipe, exclude=floats)
                metadata = quantize.dynamic_metadata(source, recipe)
                if base.ort_fusions is not None:
                    metadata["ort_fusions"] = base.ort_fusions
            else:
                metadata = quantize.quantize_static_int8(base.pre, source, ctx.calibration_feeds())
        embedded = embedded_metadata(ctx, precision, scheme)
        props = {key: value if isinstance(value, str) else json.dumps(value) for key, value in embedded.items()}
        if "weights" in metadata:  # how int8 weights are stored, for an app that checks it
            props["int8_weights"] = metadata["weights"]["recipe"]
        if mixed is not None:  # which weights stayed float under --budget, and their sensitivity
            props["mixed_precision"] = json.dumps(mixed.to_dict(), sort_keys=True)
        files = save_with_metadata(source, out_dir / rel, props)
        return Built(
            files=[str(f.relative_to(out_dir)) for f in files],
            inputs=ctx.input_infos("int64", ["batch", "sequence"]),
            outputs=ctx.output_infos({"B": "batch", "S": "sequence", **ctx.dims()}),
            metadata=metadata,
        )

    def make_runner(self, artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
        from pocketbert.formats.onnx.runner import OnnxRunner

        return OnnxRunner(out_dir / artifact.path, name=artifact.name, threads=threads)

    def make_probe_runner(self, path: Path, scratch: Path, task: Task, buckets: list[int] | None, name: str) -> Runner:
        from pocketbert.formats.onnx.runner import OnnxRunner, with_probes

        return OnnxRunner(with_probes(path, scratch / name / path.name), name=name)


FORMAT = OnnxFormat()
