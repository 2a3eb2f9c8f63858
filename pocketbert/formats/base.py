"""What a format is: the one protocol every ``pocketbert/formats/<name>/`` package satisfies, the typed quantization
scheme, and the export template every format's exporter fills in.

A format package's ``__init__`` defines ``FORMAT``, an instance of a :class:`Format` subclass, and imports nothing
heavy: conversion, quantization and runtime modules are imported inside the methods, so a missing optional
dependency only matters when that format is asked for.

The template (:meth:`Format.export`) is the same for every format: check the precision, derive the
:class:`QuantScheme`, convert the float model once per export (cached on the context), run the parity budget
against PyTorch when the scheme is weight-only int8 and ``--budget`` is set, then let the format write its file
with the common embedded metadata (:func:`embedded_metadata`) and describe it as an :class:`Artifact`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from pocketbert import __version__
from pocketbert.core.artifact import Artifact, ExportSettings, TensorInfo
from pocketbert.core.options import Option
from pocketbert.core.runner import Runner
from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.quantize.mixed import MixedPrecisionResult
from pocketbert.tasks import INPUT_NAMES, Task

FLOAT_PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class QuantScheme:
    """How an artifact's weights and activations are stored; :attr:`name` is the one place a scheme gets its name.

    Attributes:
        kind: ``none`` (float), ``dynamic`` (int8 weights, activations quantized at run time), ``static``
            (int8 weights and calibrated int8 activations), ``w8`` (Core ML int8 weights, fp16 compute) or
            ``w8a8`` (Core ML int8 weights and activations).
        granularity: ``per-channel`` (one weight scale per output channel) or ``per-tensor``.
        qdq: static int8 stored as QuantizeLinear/DequantizeLinear pairs (ONNX).
        fused: transformer fusions applied before quantizing (ONNX Runtime's QAttention).
        mixed: a parity budget kept some weight ops float.
        compute: the float type arithmetic runs in (``fp32``; Core ML ``fp16``); not part of the name.
    """

    kind: str
    granularity: str = "per-channel"
    qdq: bool = False
    fused: bool = False
    mixed: bool = False
    compute: str = "fp32"

    @property
    def is_int8(self) -> bool:
        return self.kind != "none"

    @property
    def weight_only(self) -> bool:
        """True for the schemes a parity budget applies to: int8 weights, float (or run-time) activations."""
        return self.kind in ("dynamic", "w8")

    @property
    def calibrated(self) -> bool:
        """True for the schemes whose activation ranges come from calibration texts."""
        return self.kind in ("static", "w8a8")

    @property
    def name(self) -> str:
        """``none``, or e.g. ``dynamic-per-channel-fused-mixed``, ``static-qdq-per-channel``, ``w8-per-channel``."""
        if self.kind == "none":
            return "none"
        parts = [self.kind, "qdq" if self.qdq else "", self.granularity, "fused" if self.fused else ""]
        return "-".join(p for p in [*parts, "mixed" if self.mixed else ""] if p)


FLOAT = QuantScheme("none")


def int8_kind(precision: str, settings: ExportSettings) -> str:
    """``dynamic`` / ``static`` for an int8 precision: explicit in ``int8-dynamic`` / ``int8-static``, else the
    ``--int8-scheme`` setting."""
    if precision.startswith("int8-"):
        return precision.split("-", 1)[1]
    return settings.int8_scheme


@dataclass
class Built:
    """What a format's :meth:`Format.write` produced: its files (relative to the output directory), input and
    output descriptions, buckets (static-shape formats) and the manifest metadata."""

    files: list[str]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, Any] = field(default_factory=dict)
    sequence_buckets: list[int] | None = None
    scheme: QuantScheme | None = None  # set when writing changed the scheme


@dataclass
class ReportSection:
    """A format's own section of the run report: a heading, a paragraph, and a table (``flagged`` row indexes are
    highlighted)."""

    heading: str
    text: str
    header: list[str]
    rows: list[list[str]]
    flagged: set[int] = field(default_factory=set)


class Format:
    """One deployment format. Subclasses set the class attributes and implement :meth:`convert`, :meth:`write`,
    :meth:`make_runner`; formats with a parity budget implement the three budget hooks; formats with layer probes
    implement :meth:`make_probe_runner`.

    Attributes:
        name: the format's name on the command line and in artifact names (``onnx``).
        title: its name for people (``ONNX``).
        extra: the pip extra that installs it (``pip install 'pocketbert[onnx]'``).
        requires: modules its export and runner import.
        precisions: the precisions it builds; ``fp32``/``fp16`` requests fall back to :attr:`float_precision`.
        float_precision: its float precision.
        file_name: the artifact's file name below ``<format>/<precision>/``.
        runtime: distribution name of the runtime that runs it here (``onnxruntime``).
        runtime_label: the runtime's name in bench rows (``onnxruntime``, ``litert``).
        runtime_modules: modules imported before a bench worker's load clock starts.
        libraries: distributions whose versions the report and the bench record (converter, quantizer, runtime).
        platforms: the sample apps that run it (``android``, ``ios``).
        app_preference: the bundler's preference among a platform's formats (lower first).
        emulated_kernels: its runtime runs in the emulated kernel families (QEMU guests).
        emulation_gaps: ``{guest ISA: why not}`` for the emulated families' ISAs (``aarch64``, ``x86_64``) whose
            guest cannot run its runtime; those families list its artifacts as not run, with the reason.
        options: its own settings (flags, config keys), see :mod:`pocketbert.core.options`.
        order: position in listings.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    extra: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    precisions: ClassVar[tuple[str, ...]]
    float_precision: ClassVar[str] = "fp32"
    file_name: ClassVar[str]
    runtime: ClassVar[str]
    runtime_label: ClassVar[str]
    runtime_modules: ClassVar[tuple[str, ...]] = ()
    libraries: ClassVar[tuple[str, ...]] = ()
    platforms: ClassVar[tuple[str, ...]] = ()
    app_preference: ClassVar[int] = 100
    emulated_kernels: ClassVar[bool] = False
    emulation_gaps: ClassVar[Mapping[str, str]] = {}
    options: ClassVar[tuple[Option, ...]] = ()
    order: ClassVar[int] = 100

    # -- availability ---------------------------------------------------------------------------------------------

    def check_available(self) -> None:
        """Raise :class:`MissingDependencyError` when a module this format needs is not installed."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(module, self.extra)

    def available(self) -> bool:
        try:
            self.check_available()
        except MissingDependencyError:
            return False
        return True

    def not_timed_reason(self) -> str | None:
        """Why this machine cannot time the format in its deployed runtime (the bench lists it as not measurable
        and never estimates it), or ``None`` when it can."""
        return None

    # -- precisions and schemes -----------------------------------------------------------------------------------

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise PocketbertError(
                f"{self.name} does not support precision {precision!r}; valid: {', '.join(self.precisions)}"
            )

    def scheme_for(self, precision: str, settings: ExportSettings) -> QuantScheme:
        """The scheme a precision asks for (formats refine it: ONNX adds ``fused``, Core ML names W8/W8A8)."""
        if precision in FLOAT_PRECISIONS:
            return FLOAT
        return QuantScheme(int8_kind(precision, settings))

    def validate(self, precision: str, scheme: QuantScheme, settings: ExportSettings) -> None:  # noqa: B027
        """One-line errors for settings this format cannot honour for ``precision`` (before any slow work)."""

    # -- the export template --------------------------------------------------------------------------------------

    def float_key(self, scheme: QuantScheme) -> str:
        """Which float model ``scheme`` starts from; one conversion per key and export."""
        return "float"

    def export(self, ctx: Any, precision: str, out_dir: Path) -> Artifact:
        """Write the artifact below ``out_dir/<format>/<precision>/`` and describe it (paths relative to out_dir).

        ``ctx`` is the :class:`pocketbert.exporting.context.ExportContext` shared by every artifact of one export.
        """
        self.check_precision(precision)
        scheme = self.scheme_for(precision, ctx.settings)
        self.validate(precision, scheme, ctx.settings)
        base = ctx.cached(f"{self.name}:{self.float_key(scheme)}", lambda: self.convert(ctx, scheme))
        mixed = None
        if scheme.weight_only and ctx.settings.int8_budget:
            mixed = ctx.budget_search(
                units=lambda modules: self.budget_units(ctx, base, modules),
                build=lambda floats, path: self.build_trial(ctx, base, floats, path),
                runner=lambda path: self.trial_runner(ctx, path),
                filename=self.file_name,
            )
            scheme = replace(scheme, mixed=bool(mixed.float_units))
        rel = Path(self.name) / precision / self.file_name
        built = self.write(ctx, base, precision, scheme, mixed, out_dir, rel)
        scheme = built.scheme or scheme
        if mixed is not None:
            built.metadata["mixed_precision"] = mixed.to_dict()
        built.metadata.setdefault("scheme", scheme.name)
        return Artifact(
            format=self.name,
            precision=precision,
            path=str(rel),
            scheme=scheme.name,
            inputs=built.inputs,
            outputs=built.outputs,
            files=built.files,
            sequence_buckets=built.sequence_buckets,
            metadata=built.metadata,
        )

    def convert(self, ctx: Any, scheme: QuantScheme) -> Any:
        """The float model every precision of this export starts from (a path, bytes or an in-memory model)."""
        raise NotImplementedError

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
        """Quantize ``base`` as ``scheme`` says (keeping ``mixed.float_units`` float), write it to ``out_dir/rel``
        with :func:`embedded_metadata`, and describe what was written."""
        raise NotImplementedError

    # -- the parity budget (weight-only int8) ---------------------------------------------------------------------

    def budget_units(self, ctx: Any, base: Any, modules: list[tuple[str, tuple[int, ...]]]) -> list[Any]:
        """The format's quantizable weight ops (:class:`pocketbert.quantize.mixed.Unit`), labelled from PyTorch's
        ``(module name, weight shape)`` list in call order."""
        raise PocketbertError(f"{self.name} has no parity budget; drop --budget or the format")

    def build_trial(self, ctx: Any, base: Any, float_units: list[str], path: Path) -> None:
        """Write a trial artifact to ``path``: int8 except the units named in ``float_units``."""
        raise NotImplementedError

    def trial_runner(self, ctx: Any, path: Path) -> Runner:
        """A runner of a trial artifact at ``path``."""
        raise NotImplementedError

    def max_sequence(self, artifact: Artifact) -> int | None:
        """The longest input in tokens ``artifact`` accepts, when it has a limit short of the model's positions
        (static buckets: the largest)."""
        return max(artifact.sequence_buckets) if artifact.sequence_buckets else None

    def report_section(self, manifest: dict[str, Any], out_dir: Path) -> ReportSection | None:
        """A section of the run report about this format's artifacts of ``manifest`` (``None``: nothing to add)."""
        return None

    # -- runners --------------------------------------------------------------------------------------------------

    def make_runner(self, artifact: Artifact, out_dir: Path, threads: int | None = None) -> Runner:
        """The runner that executes ``artifact`` (stored below ``out_dir``) in this format's runtime here."""
        raise NotImplementedError

    def make_probe_runner(self, path: Path, scratch: Path, task: Task, buckets: list[int] | None, name: str) -> Runner:
        """A runner of ``path`` whose outputs also hold every layer norm's output as ``probe_<i>`` (graph order),
        for ``pocketbert diagnose`` (see :mod:`pocketbert.parity.localize`)."""
        raise PocketbertError(f"{self.name} artifacts cannot be probed layer by layer")

    def __repr__(self) -> str:
        return f"<format {self.name}>"


def embedded_metadata(ctx: Any, precision: str, scheme: QuantScheme, **extra: Any) -> dict[str, Any]:
    """What every artifact file carries about itself, in one dict (each format encodes it its own way: ONNX
    ``metadata_props``, a TFLite metadata entry, Core ML user-defined metadata, an ExecuTorch constant method).

    Keys: ``pocketbert_version``, ``task``, ``labels`` (list), ``precision``, ``scheme``, ``inputs`` (names),
    ``outputs`` (names), ``source``, ``max_length``, then ``extra``.
    """
    from pocketbert.tasks import output_specs

    return {
        "pocketbert_version": __version__,
        "task": ctx.loaded.task.value,
        "labels": list(ctx.loaded.labels),
        "precision": precision,
        "scheme": scheme.name,
        "inputs": list(INPUT_NAMES),
        "outputs": [spec.name for spec in output_specs(ctx.loaded.task)],
        "source": ctx.loaded.origin,
        "max_length": ctx.settings.max_length,
        **extra,
    }
