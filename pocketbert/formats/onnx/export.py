"""ONNX export: the deployment wrapper through the torch.export-based (dynamo) exporter, then int8 via ORT.

Graphs have dynamic ``batch`` and ``sequence`` axes, int64 inputs ``input_ids`` / ``attention_mask`` and the task's
named outputs. Models above ~1.8 GB of weights are saved with external data (``model.onnx.data``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pocketbert import __version__
from pocketbert.errors import PocketbertError
from pocketbert.formats.onnx.format import OPSET
from pocketbert.tasks import INPUT_NAMES

EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's hard limit is 2 GiB; stay well below it
MODEL_FILE = "model.onnx"


def needs_external_data(module: Any) -> bool:
    """True when the module's float32 weights are too large for a single protobuf file."""
    return sum(p.numel() * 4 for p in module.parameters()) > EXTERNAL_DATA_BYTES


def _rename_outputs(model: Any, names: tuple[str, ...]) -> None:
    """Give the graph outputs the task's names (an onnx_ir model, in place).

    The dynamo exporter names values after the op that makes them (``embedding`` for ``aten.embedding``), so a
    wanted output name may already belong to an inner value: that value is renamed first, keeping the graph SSA.
    """
    graph = model.graph
    outputs = list(graph.outputs)
    if len(outputs) != len(names):
        raise PocketbertError(f"exported graph has {len(outputs)} outputs, expected {len(names)} ({names})")
    taken = {v.name for node in graph for v in node.outputs} | {v.name for v in graph.inputs}
    wanted = set(names)
    for node in graph:
        for value in node.outputs:
            if value.name in wanted and value not in outputs:
                suffix = 0
                while f"{value.name}_inner{suffix}" in taken:
                    suffix += 1
                value.name = f"{value.name}_inner{suffix}"
                taken.add(value.name)
    for value, name in zip(outputs, names):
        value.name = name


def node_module(node: Any) -> str:
    """The PyTorch module a node of a dynamo export came from (``encoder.layer.0.output.dense``), else its name.

    The exporter records ``namespace`` metadata as ``name: Type/name: Type/.../op: aten.op``; the module is the
    name of the last ``name: Type`` step before the op, minus the wrapper's own prefix.
    """
    namespace = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
    steps = namespace.split("/")
    if len(steps) < 2:
        return node.name
    from pocketbert.wrapper import public_module_name

    return public_module_name(steps[-2].split(":")[0].strip())


def export_fp32(ctx: Any, path: Path) -> Path:
    """Export the fp32 graph of the export context ``ctx``'s wrapper to ``path`` (dynamic batch and sequence
    axes) and return it."""
    import torch

    wrapper = ctx.wrapper()
    sample = ctx.sample_inputs(batch=2, seq=min(16, ctx.loaded.max_positions))
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=ctx.loaded.max_positions)
    dynamic = {name: {0: batch, 1: seq} for name in INPUT_NAMES}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                wrapper,
                sample,
                input_names=list(INPUT_NAMES),
                dynamic_shapes=dynamic,
                opset_version=ctx.settings.get(OPSET),
                dynamo=True,
                verbose=False,
                report=False,
            )
        except Exception as exc:  # torch.export raises many types; the first line says what failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PocketbertError(f"torch.export could not trace the model for ONNX: {first}") from exc
    _rename_outputs(program.model, wrapper.output_names)
    program.save(str(path), external_data=needs_external_data(wrapper))
    return path


def save_with_metadata(src: Path, dst: Path, metadata: dict[str, str]) -> list[Path]:
    """Copy an ONNX model to ``dst`` with ``metadata_props`` set, check it, and return the files written."""
    import onnx

    model = onnx.load(str(src), load_external_data=True)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **metadata})
    model.producer_name = "pocketbert"
    model.producer_version = __version__
    external = model.ByteSize() > EXTERNAL_DATA_BYTES
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=external, location=dst.name + ".data")
    onnx.checker.check_model(str(dst))
    return [dst] + ([dst.with_name(dst.name + ".data")] if external else [])
