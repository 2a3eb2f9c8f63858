"""The ExecuTorch format: an XNNPACK-delegated ``.pte`` with one static method per sequence bucket (or one
bounded dynamic-length method), fp32 and int8 (dynamic int8 activations, per-channel int8 weights of every
linear layer, int8 word embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketbert.core.artifact import Artifact, ExportSettings
from pocketbert.core.options import Option
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.formats.base import Built, Format, QuantScheme, embedded_metadata
from pocketbert.quantize.mixed import MixedPrecisionResult, Unit
from pocketbert.tasks import Task

MODEL_FILE = "model.pte"
SHAPES = Option(
    "executorch_shapes",
    "str",
    "dynamic",
    "ExecuTorch sequence handling: dynamic (default: one method with a sequence axis bounded by the largest bucket, "
    "no padding; half the memory) or buckets (one static method per bucket, seq_<n>); see docs/executorch.md",
    choices=("buckets", "dynamic"),
    owner="executorch",
    setting="executorch_shapes",
)


def methods_of(artifact: Artifact) -> dict[str, str]:
    """The artifact's methods as the manifest records them: bucket (string) -> method, or ``{"dynamic": name}``."""
    methods = artifact.metadata.get("methods")
    if not methods:
        raise PocketbertError(f"artifact {artifact.name} records no ExecuTorch methods; re-run the export")
    return dict(methods)


class ExecuTorchFormat(Format):
    """ExecuTorch ``.pte`` for the XNNPACK CPU backend, fp32 and dynamic int8."""

    name = "executorch"
    title = "ExecuTorch"
    extra = "executorch"
    requires = ("executorch", "torchao")
    precisions = ("fp32", "int8", "int8-dynamic")
    file_name = MODEL_FILE
    runtime = "executorch"
    runtime_label = "executorch"
    runtime_modules = ("executorch.runtime",)
    libraries = ("executorch", "torchao")
    app_preference = 20
    platforms = ("android",)
    emulated_kernels = True
    emulation_gaps = {
        "aarch64": (
            "no aarch64 ExecuTorch runtime here: its Python bindings link libtorch, and PyPI's aarch64 torch "
            "2.13.0 is a CUDA build whose pinned CUDA 13 wheels are not all on the package index "
            "(nvidia-nccl-cu13==2.29.7 is missing)"
        )
    }
    options = (SHAPES,)
    order = 40

    def validate(self, precision: str, scheme: QuantScheme, settings: ExportSettings) -> None:
        if scheme.kind == "static":
            raise PocketbertError(
                "ExecuTorch int8 is dynamic (int8 weights per channel, activations quantized at run time, as XNNPACK "
                "runs it); drop --int8-scheme static or the executorch format"
            )
        SHAPES.check(settings.get(SHAPES))

    def convert(self, ctx: Any, scheme: QuantScheme) -> Any:
        """The float deployment wrapper itself: ExecuTorch lowers from PyTorch for every precision."""
        return ctx.wrapper()

    def _lower(self, ctx: Any, base: Any, int8: bool, floats: list[str], metadata: dict, path: Path) -> dict:
        from pocketbert.formats.executorch.lower import lower

        buckets = list(ctx.settings.sequence_buckets)
        strategy = ctx.settings.get(SHAPES)
        return lower(base, buckets, int8=int8, float_modules=floats, metadata=metadata, path=path, strategy=strategy)

    def budget_units(self, ctx: Any, base: Any, modules: list[tuple[str, tuple[int, ...]]]) -> list[Unit]:
        """Quantization happens in PyTorch here, so a unit is a module: its name and its checkpoint name."""
        from pocketbert.formats.executorch.quantize import weight_units

        return [Unit(name, public) for name, public in weight_units(base)]

    def build_trial(self, ctx: Any, base: Any, float_units: list[str], path: Path) -> None:
        scheme = QuantScheme("dynamic")
        self._lower(ctx, base, True, float_units, embedded_metadata(ctx, "int8", scheme), path)

    def trial_runner(self, ctx: Any, path: Path) -> Runner:
        from pocketbert.formats.executorch.runner import ExecuTorchRunner, read_metadata

        return ExecuTorchRunner(path, task=ctx.loaded.task, methods=read_metadata(path)["methods"])

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
        floats = [u["name"] for u in mixed.float_units] if mixed else []
        embedded = embedded_metadata(ctx, precision, scheme)
        info = self._lower(ctx, base, scheme.is_int8, floats, embedded, out_dir / rel)
        dynamic = bool(info["dynamic"])
        axis = "sequence" if dynamic else "bucket"
        metadata: dict[str, Any] = {
            "methods": info["methods"],
            "dynamic": dynamic,
            "max_length": info["max_sequence"],
            "delegate": "xnnpack",
            "metadata_method": info["metadata_method"],
            "ops": info["ops"],
        }
        if info.get("quantization"):
            metadata["quantization"] = info["quantization"]
        return Built(
            files=[str(rel)],
            inputs=ctx.input_infos(info["input_dtype"], [1, axis]),
            outputs=ctx.output_infos({"B": 1, "S": axis, **ctx.dims()}),
            metadata=metadata,
            sequence_buckets=None if dynamic else list(info["buckets"]),
        )

    def max_sequence(self, artifact: Artifact) -> int | None:
        """The largest bucket, or the bound of the dynamic method's sequence axis."""
        return super().max_sequence(artifact) or artifact.metadata.get("max_length")

    def make_runner(self, artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
        from pocketbert.core.artifact import read_manifest
        from pocketbert.formats.executorch.runner import ExecuTorchRunner

        task = Task(read_manifest(out_dir)["model"]["task"])
        return ExecuTorchRunner(
            out_dir / artifact.path, task=task, methods=methods_of(artifact), name=artifact.name, threads=threads
        )

    def make_probe_runner(self, path: Path, scratch: Path, task: Task, buckets: list[int] | None, name: str) -> Runner:
        """The ``.pte`` itself run under ExecuTorch's event tracer, every layer norm's output read back from the
        ETDump as ``probe_<i>`` (see :mod:`pocketbert.formats.executorch.probes`); the methods are the ones the
        program's embedded metadata names (one per bucket, or the dynamic ``forward``)."""
        from pocketbert.formats.executorch.runner import ExecuTorchProbeRunner, read_metadata

        methods = read_metadata(path)["methods"]
        return ExecuTorchProbeRunner(path, task=task, methods=methods, scratch=scratch, name=name)


FORMAT = ExecuTorchFormat()
