"""Which compute unit Core ML will run each op of a package on: Core ML's own plan on macOS, a cited check elsewhere.

Two sources, never mixed up (the result's ``source`` and ``label`` say which one it is):

* ``compute-plan`` (macOS with Core ML): coremltools' ``MLComputePlan`` (coremltools 8+, macOS 14.4+) compiles the
  package and reports, per MIL op, the device Core ML prefers (Neural Engine, GPU, CPU), the devices that could run
  it, and its estimated share of the work. That is Core ML's plan on *this* Mac's chip and OS for the requested
  compute units; a phone's chip and OS can plan differently (coremltools#1780), and the plan is not a latency.
* ``static-check`` (anywhere else): the saved program is checked against Neural Engine constraints that Apple or
  coremltools' maintainers have stated in public; each check names its source. It is a check, not a
  measurement: there is no published list of which ops the Neural Engine runs (coremltools#1780), so an op type
  is flagged only when a source says it does not run there.

:func:`placement` is what the report calls; :func:`placement_of_package` is what the export records in the
artifact's ``metadata["placement"]``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import Artifact
from pocketbert.errors import PocketbertError

STATIC_LABEL = (
    "static check of the saved program against documented Neural Engine constraints; not a measurement of where "
    "Core ML runs it"
)
PLAN_LABEL = (
    "Core ML's compute plan (MLComputePlan) on this Mac for the given compute units: the device Core ML prefers per "
    "op on this chip and OS; a phone can plan differently, and a plan is not a latency"
)

SOURCES = {
    "ranges": (
        "Apple DTS engineer, developer.apple.com/forums/thread/724930: 'For models with range flexibility, we "
        "currently only support running on the Neural Engine for the input's default shape'; apple/coremltools#2370"
    ),
    "enumerated": (
        "developer.apple.com/forums/thread/724930: 'For enumerated shape flexibility, each shape should be able to "
        "run on the Neural Engine'; coremltools guide, Flexible Input Shapes: 'Use EnumeratedShapes for best "
        "performance'"
    ),
    "fp16": (
        "coremltools guide, Typed Execution Workflow Example: a float 16 typed model 'is eligible to execute on a "
        "combination of the Neural Engine (NE), GPU and CPU', a float 32 typed model 'will execute on a combination "
        "of the GPU and CPU'"
    ),
    "rank": (
        "apple/coremltools#1723 and #1330 (maintainer): 'Core ML does not support tensors with a rank greater than "
        "five'"
    ),
    "layout": (
        "machinelearning.apple.com/research/apple-neural-engine, principle 1: the (B, C, 1, S) data format, "
        "4-D and channels-first, is the most conducive for the Neural Engine"
    ),
    "recurrent": "apple/coremltools#1780 (Apple): 'RNN or LSTM ops are not supported on the neural engine'",
    "w8a8": (
        "coremltools guide, Quantization Performance: int8-int8 compute has increased throughput on the Neural "
        "Engine of A17 Pro / M4 and newer; elsewhere activation quantization can slow CPU and GPU down"
    ),
    "no_op_list": (
        "apple/coremltools#1780 (Apple): there is no static documentation of Neural Engine op support, 'as it "
        "changes based on device generation, operating system version, tensor sizes'"
    ),
}

RECURRENT_OPS = ("lstm", "gru", "rnn")
HEAVY_OPS = ("conv", "linear", "matmul", "einsum", "softmax", "layer_norm")  # where the encoder's work is
FRAMEWORK_MAX_RANK = 5


def placement(artifact: Artifact, out_dir: Path) -> dict[str, Any]:
    """Where Core ML will run ``artifact`` (a Core ML artifact below ``out_dir``): see :func:`placement_of_package`.

    Returns a JSON-serialisable dict; ``source`` is ``compute-plan`` or ``static-check`` and ``label`` says what
    that means.
    """
    if artifact.format != "coreml":
        raise PocketbertError(f"placement is for Core ML artifacts; {artifact.name} is {artifact.format}")
    return placement_of_package(Path(out_dir) / artifact.path)


def placement_of_package(path: Path, compute_units: str = "ALL") -> dict[str, Any]:
    """Core ML's compute plan for ``path`` (an ``.mlpackage``) when this machine can make one, else
    :func:`static_check`. A compute plan that fails is reported with its reason, next to the static check."""
    from pocketbert.formats.coreml.runner import coreml_available

    if coreml_available():
        try:
            return compute_plan(path, compute_units)
        except Exception as exc:  # an older macOS or coremltools without MLComputePlan: say so, check statically
            result = static_check(path)
            result["compute_plan_error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            return result
    return static_check(path)


def _check(name: str, status: str, found: str, rule: str, source: str) -> dict[str, str]:
    """One row of the static check: ``status`` is ``pass``, ``flag`` (a documented blocker), ``advice`` (a
    documented performance guideline not followed) or ``info``."""
    return {"check": name, "status": status, "found": found, "rule": rule, "source": SOURCES[source]}


def _shapes_check(spec: Any) -> dict[str, str]:
    ranged, enumerated = [], []
    for feature in spec.description.input:
        array = feature.type.multiArrayType
        if array.HasField("shapeRange"):
            bounds = " x ".join(f"{r.lowerBound}..{r.upperBound}" for r in array.shapeRange.sizeRanges)
            ranged.append(f"{feature.name} ({bounds}, default {tuple(array.shape)})")
        elif array.HasField("enumeratedShapes"):
            shapes = ", ".join(str(tuple(s.shape)) for s in array.enumeratedShapes.shapes)
            enumerated.append(f"{feature.name} ({shapes})")
    if ranged:
        return _check(
            "flexible shapes",
            "flag",
            "range (RangeDim) inputs: " + "; ".join(ranged),
            "a range-shaped model runs on the Neural Engine at its default shape only; other shapes run on GPU or "
            "CPU (use enumerated shapes: --coreml-shapes enumerated)",
            "ranges",
        )
    found = "enumerated inputs: " + "; ".join(enumerated) if enumerated else "fixed input shapes"
    return _check(
        "flexible shapes", "pass", found, "every enumerated (or fixed) shape can run on the Neural Engine", "enumerated"
    )


def _dtype(var: Any) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(var.dtype)


def _rank(var: Any) -> int:
    shape = getattr(var, "shape", None)
    return len(shape) if shape is not None else 0


def static_check(path: Path) -> dict[str, Any]:
    """Check the saved program of ``path`` against the cited constraints in :data:`SOURCES`.

    Checks: flexible shapes (ranges flagged), compute precision (fp32 compute flagged), tensor rank (Core ML's
    limit of 5), data format (rank-4 outputs of the heavy ops, advice only), recurrent ops (flagged), int8
    activations (info). Returns ``{"source": "static-check", "from_core_ml": False, "label", "verdict", "checks",
    "ops"}`` where ``ops`` counts the program's non-constant ops by type.
    """
    from pocketbert.formats.coreml.mil.package import load_mil

    spec, function = load_mil(Path(path))
    ops = [op for op in function.operations if op.op_type != "const"]
    types_count = Counter(op.op_type for op in ops)
    checks = [_shapes_check(spec)]

    compute = [op for op in ops if not op.op_type.startswith("constexpr_") and op.op_type != "cast"]
    fp32 = sum(1 for op in compute for v in op.outputs if _dtype(v) == "fp32")
    fp16 = sum(1 for op in compute for v in op.outputs if _dtype(v) == "fp16")
    if fp32 > fp16:
        checks.append(
            _check(
                "compute precision",
                "flag",
                f"{fp32} fp32 and {fp16} fp16 op outputs (fp32 typed)",
                "fp32 typed models run on GPU and CPU only",
                "fp16",
            )
        )
    else:
        checks.append(
            _check(
                "compute precision",
                "pass",
                f"{fp16} fp16 and {fp32} fp32 op outputs (fp16 typed)",
                "fp16 typed models are eligible for the Neural Engine",
                "fp16",
            )
        )

    max_rank = max((_rank(v) for op in ops for v in op.outputs), default=0)
    checks.append(
        _check(
            "tensor rank",
            "pass" if max_rank <= FRAMEWORK_MAX_RANK else "flag",
            f"highest rank {max_rank}",
            f"Core ML loads tensors of rank <= {FRAMEWORK_MAX_RANK} only",
            "rank",
        )
    )

    heavy = [op for op in ops if op.op_type in HEAVY_OPS]
    rank4 = sum(1 for op in heavy if all(_rank(v) == 4 for v in op.outputs))
    share = rank4 / len(heavy) if heavy else 0.0
    checks.append(
        _check(
            "data format",
            "pass" if share >= 0.9 else "advice",
            f"{rank4} of {len(heavy)} {'/'.join(HEAVY_OPS)} ops produce rank-4 tensors",
            "keep activations (B, C, 1, S) (--coreml-layout ane); a guideline for speed, not a blocker",
            "layout",
        )
    )

    recurrent = sorted(t for t in types_count if t.split("_")[0] in RECURRENT_OPS)
    checks.append(
        _check(
            "recurrent ops",
            "flag" if recurrent else "pass",
            ", ".join(recurrent) if recurrent else "none",
            "RNN/LSTM/GRU ops do not run on the Neural Engine",
            "recurrent",
        )
    )
    if "quantize" in types_count:
        checks.append(
            _check(
                "int8 activations",
                "info",
                f"{types_count['quantize']} quantize ops (W8A8)",
                "int8-int8 compute pays off on the Neural Engine of A17 Pro / M4 and newer",
                "w8a8",
            )
        )
    checks.append(
        _check(
            "op types",
            "info",
            ", ".join(f"{t} x{n}" for t, n in sorted(types_count.items())),
            "not checked: no published list says which op types the Neural Engine runs",
            "no_op_list",
        )
    )
    flagged = [c["check"] for c in checks if c["status"] == "flag"]
    return {
        "source": "static-check",
        "from_core_ml": False,
        "label": STATIC_LABEL,
        "verdict": f"flagged: {', '.join(flagged)}" if flagged else "no documented blocker found",
        "checks": checks,
        "ops": {"total": len(ops), "by_type": dict(sorted(types_count.items()))},
    }


def _device_name(device: Any) -> str:
    from coremltools.models.compute_device import (
        MLCPUComputeDevice,
        MLGPUComputeDevice,
        MLNeuralEngineComputeDevice,
    )

    for cls, name in (
        (MLNeuralEngineComputeDevice, "neural_engine"),
        (MLGPUComputeDevice, "gpu"),
        (MLCPUComputeDevice, "cpu"),
    ):
        if isinstance(device, cls):
            return name
    return type(device).__name__


def compute_plan(path: Path, compute_units: str = "ALL") -> dict[str, Any]:
    """Core ML's plan for ``path`` on this Mac (macOS 14.4+): per op, the preferred device, the supported devices
    and the estimated cost share, summed by device.

    Returns ``{"source": "compute-plan", "from_core_ml": True, "label", "compute_units", "ops", "by_device",
    "cost_by_device", "off_neural_engine"}``: ``by_device`` counts ops, ``cost_by_device`` sums Core ML's
    estimated cost weights (0..1 of the whole run), ``off_neural_engine`` lists the ops (type, name, device,
    supported devices) Core ML prefers to run elsewhere.
    """
    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan

    units = getattr(ct.ComputeUnit, compute_units)
    with tempfile.TemporaryDirectory(prefix="pocketbert-plan-") as tmp:
        compiled = ct.models.utils.compile_model(str(path), str(Path(tmp) / "model.mlmodelc"))
        plan = MLComputePlan.load_from_path(compiled, compute_units=units)
        main = plan.model_structure.program.functions["main"]
        by_device: Counter[str] = Counter()
        cost: Counter[str] = Counter()
        elsewhere: list[dict[str, Any]] = []
        total = 0
        for op in main.block.operations:
            if op.operator_name == "const":
                continue
            total += 1
            usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
            estimate = plan.get_estimated_cost_for_mlprogram_operation(op)
            device = _device_name(usage.preferred_compute_device) if usage else "unknown"
            by_device[device] += 1
            cost[device] += float(estimate.weight) if estimate else 0.0
            if device != "neural_engine":
                supported = [_device_name(d) for d in usage.supported_compute_devices] if usage else []
                names = [o.name for o in op.outputs]
                elsewhere.append(
                    {
                        "op": op.operator_name,
                        "output": names[0] if names else "",
                        "device": device,
                        "supported": supported,
                    }
                )
    return {
        "source": "compute-plan",
        "from_core_ml": True,
        "label": PLAN_LABEL,
        "compute_units": compute_units,
        "ops": total,
        "by_device": dict(by_device),
        "cost_by_device": {k: round(v, 4) for k, v in cost.items()},
        "off_neural_engine": elsewhere,
    }


def summary(result: dict[str, Any]) -> str:
    """One line for a report cell: the verdict of a static check, or the op counts per device of a plan."""
    if result.get("source") == "compute-plan":
        counts = ", ".join(f"{device} {n}" for device, n in sorted(result["by_device"].items()))
        return f"compute plan ({result['compute_units']}): {counts} of {result['ops']} ops"
    return f"static check: {result['verdict']}"


def report_table(manifest: dict[str, Any], out_dir: Path) -> tuple[list[str], list[list[str]], set[int], list[str]]:
    """The report's Core ML placement section as plain data: ``(header, rows, flagged row indexes, notes)``.

    One row per Core ML artifact of ``manifest`` (the placement recorded at export, or :func:`placement` for an
    artifact exported without one) and one per static check of it, so the report shows every check with its status
    and source; ``notes`` holds the label of each source used (what the numbers are and are not). Empty rows when
    the output has no Core ML artifact.
    """
    from pocketbert.core.artifact import manifest_artifacts

    header = ["artifact", "layout", "shapes", "source", "check", "status", "found", "documented by"]
    rows: list[list[str]] = []
    flagged: set[int] = set()
    labels: dict[str, str] = {}
    for artifact in manifest_artifacts(manifest):
        if artifact.format != "coreml":
            continue
        layout = str(artifact.metadata.get("layout", "standard"))
        shapes = str(artifact.metadata.get("shapes", {}).get("kind", ""))
        try:
            result = artifact.metadata.get("placement") or placement(artifact, Path(out_dir))
        except PocketbertError as exc:  # exported before placement was recorded, and not checkable here
            rows.append([artifact.name, layout, shapes, "none", "", "", f"not checked: {exc}", ""])
            continue
        labels[result["source"]] = result["label"]
        if result["source"] == "compute-plan":
            rows.append(
                [artifact.name, layout, shapes, "compute plan", "devices", "", summary(result), "MLComputePlan"]
            )
            continue
        for check in result["checks"]:
            if check["status"] == "flag":
                flagged.add(len(rows))
            rows.append(
                [
                    artifact.name,
                    layout,
                    shapes,
                    "static check",
                    check["check"],
                    check["status"],
                    check["found"],
                    check["source"],
                ]
            )
    notes = [f"{source}: {label}." for source, label in sorted(labels.items())]
    return header, rows, flagged, notes
