"""Lowering the deployment wrapper to an ExecuTorch program (``.pte``) delegated to XNNPACK.

``torch.export`` traces the wrapper, ``executorch.exir.to_edge_transform_and_lower`` hands every op XNNPACK
supports to the XNNPACK backend (the rest run on ExecuTorch's portable/optimized CPU kernels), and
``to_executorch`` serializes the program. Two ways to serve texts of different lengths:

* ``"buckets"``: one static-shape method per sequence bucket, ``seq_<n>`` (like the TFLite signatures), all in one
  program; the weights are stored once and shared by every method. An app pads a text to the smallest bucket
  that holds it.
* ``"dynamic"`` (the default, see docs/executorch.md): one method ``forward`` with a bounded dynamic sequence
  axis (``1 ≤ S ≤ max bucket``): an app passes the text at its own length, no padding.

Every method takes int64 ``input_ids`` and ``attention_mask`` ``(1, S)`` and returns the task's outputs in
``module.output_names`` order (float32). The program also carries two constant methods with the same JSON
metadata (task, labels, output names, methods, buckets, precision, scheme, …): ``pocketbert_metadata`` returns it
as a string, ``pocketbert_metadata_utf8`` as a uint8 tensor of its UTF-8 bytes (for bindings that return only
tensors). An app reads either through the runtime's ``Module.execute(name)``; see :func:`read_metadata` in
:mod:`pocketbert.formats.executorch.runner`.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from pocketbert.errors import PocketbertError
from pocketbert.tasks import INPUT_NAMES

METADATA_METHOD = "pocketbert_metadata"
METADATA_BYTES_METHOD = "pocketbert_metadata_utf8"
DYNAMIC_METHOD = "forward"
STRATEGIES = ("buckets", "dynamic")
DEFAULT_STRATEGY = "dynamic"  # measured: docs/executorch.md
INPUT_DTYPE = "int64"


def method_name(bucket: int) -> str:
    """The method holding sequence length ``bucket``, e.g. ``seq_128``."""
    return f"seq_{bucket}"


def _example(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.ones((1, length), dtype=torch.long)
    return ids, torch.ones_like(ids)


def _dynamic_shapes(max_length: int) -> tuple[dict[int, Any], dict[int, Any]]:
    seq = torch.export.Dim("seq", min=1, max=max_length)
    return {1: seq}, {1: seq}


def _check_buckets(buckets: Sequence[int]) -> list[int]:
    ordered = sorted({int(b) for b in buckets})
    if not ordered or ordered[0] < 1:
        raise PocketbertError(f"sequence buckets must be positive token counts, got {list(buckets)}")
    return ordered


def _drop_noop_expands(graph_module: torch.fx.GraphModule) -> Any:
    """Edge pass: remove ``expand_copy`` nodes whose output shape is their input's.

    ``torch.matmul`` on 4-D tensors decomposes to ``expand`` + ``view`` + ``bmm``; for attention the expand keeps
    the shape, yet XNNPACK has no expand, so each one would split the delegated graph and copy its input.
    """
    from executorch.exir.dialects._ops import ops as exir_ops
    from torch.fx.passes.infra.pass_base import PassResult

    changed = False
    for node in list(graph_module.graph.nodes):
        if node.op == "call_function" and node.target == exir_ops.edge.aten.expand_copy.default:
            source = node.args[0]
            if tuple(source.meta["val"].shape) == tuple(node.meta["val"].shape):
                node.replace_all_uses_with(source)
                graph_module.graph.erase_node(node)
                changed = True
    if changed:
        graph_module.graph.lint()
        graph_module.recompile()
    return PassResult(graph_module, changed)


def _infer_symbolic_view_dims(graph_module: torch.fx.GraphModule) -> Any:
    """Edge pass: in a ``view_copy`` whose target shape has exactly one symbolic size, write that size as ``-1``.

    With a dynamic sequence axis every reshape's target shape holds the symbolic length, and XNNPACK refuses
    symbolic shapes but accepts one inferred (``-1``) dimension; the view is the same, and XNNPACK then keeps the
    reshapes (and the ops between them) in its subgraph.
    """
    from executorch.exir.dialects._ops import ops as exir_ops
    from torch.fx.passes.infra.pass_base import PassResult

    changed = False
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target != exir_ops.edge.aten.view_copy.default:
            continue
        shape = list(node.args[1])
        symbolic = [i for i, size in enumerate(shape) if not isinstance(size, int)]
        if len(symbolic) == 1 and -1 not in shape:
            shape[symbolic[0]] = -1
            node.args = (node.args[0], shape, *node.args[2:])
            changed = True
    if changed:
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
    return PassResult(graph_module, changed)


def _op_summary(edge: Any, names: Iterable[str]) -> dict[str, Any]:
    """Per method: how many XNNPACK delegate calls, and which ops run outside XNNPACK (op name -> count)."""
    summary: dict[str, Any] = {}
    for name in names:
        graph = edge.exported_program(name).graph_module.graph
        outside: collections.Counter[str] = collections.Counter()
        delegates = 0
        for node in graph.nodes:
            if node.op != "call_function":
                continue
            if "executorch_call_delegate" in str(node.target):
                delegates += 1
            elif not str(node.target).startswith(("<built-in", "aten.sym_size")):
                outside[getattr(node.target, "__name__", str(node.target))] += 1
        summary[name] = {"xnnpack_delegates": delegates, "portable_ops": dict(sorted(outside.items()))}
    return summary


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lower(
    module: torch.nn.Module,
    buckets: Sequence[int],
    *,
    int8: bool,
    float_modules: Sequence[str] = (),
    metadata: dict[str, Any],
    path: Path | str,
    strategy: str = DEFAULT_STRATEGY,
) -> dict[str, Any]:
    """Lower ``module`` to an XNNPACK-delegated ExecuTorch program and write it to ``path`` (atomically).

    Args:
        module: the deployment wrapper (:class:`pocketbert.wrapper.DeploymentModel`): ``forward(input_ids,
            attention_mask)`` on int64 ``(1, S)`` returning a tuple of float tensors named by ``output_names``.
        buckets: sequence lengths in tokens; ``"buckets"`` makes one ``seq_<n>`` method each, ``"dynamic"`` uses
            the largest as the bound of ``forward``'s sequence axis.
        int8: quantize (see :mod:`pocketbert.formats.executorch.quantize`); fp32 otherwise.
        float_modules: with ``int8``, modules kept float (``named_modules()`` or public names).
        metadata: app-facing facts to embed (task, labels, precision, scheme, …); the lowering adds
            ``output_names``, ``input_names``, ``input_dtype``, ``methods``, ``buckets``, ``dynamic`` and
            ``max_sequence``.
        path: the ``.pte`` to write.
        strategy: ``"dynamic"`` (the default) or ``"buckets"``.

    Returns:
        What was written: ``methods`` (bucket as a string -> method name, or ``{"dynamic": "forward"}``),
        ``buckets``, ``dynamic``, ``max_sequence``, ``input_names``, ``input_dtype``, ``output_names``,
        ``metadata_method`` (string) and ``metadata_bytes_method`` (uint8 tensor), ``metadata`` (as embedded),
        ``size_bytes``, ``ops`` (per method: XNNPACK delegate count and the ops outside XNNPACK) and, for int8,
        ``quantization`` (scheme, int8/float linear counts, quantized embeddings, modules kept float).
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    if strategy not in STRATEGIES:
        raise PocketbertError(f"unknown sequence strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if float_modules and not int8:
        raise PocketbertError("float_modules applies to int8 only")
    lengths = _check_buckets(buckets)
    max_length = lengths[-1]
    output_names = list(getattr(module, "output_names", ()))
    if not output_names:
        raise PocketbertError("the module has no output_names; pass the deployment wrapper")
    module = module.eval()
    dynamic = strategy == "dynamic"
    quantization: dict[str, Any] | None = None
    traced: torch.nn.Module = module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if int8:
            from pocketbert.formats.executorch.quantize import SCHEME, quantize_int8

            result = quantize_int8(module, _example(max_length), _dynamic_shapes(max_length), float_modules)
            traced = result.pop("module")
            quantization = {"scheme": SCHEME, **result}
        if dynamic:
            methods = {"dynamic": DYNAMIC_METHOD}
            programs = {
                DYNAMIC_METHOD: torch.export.export(
                    traced, _example(max_length), dynamic_shapes=_dynamic_shapes(max_length)
                )
            }
        else:
            methods = {str(b): method_name(b) for b in lengths}
            programs = {method_name(b): torch.export.export(traced, _example(b)) for b in lengths}
        embedded = {
            **metadata,
            "format": "executorch",
            "input_names": list(INPUT_NAMES),
            "input_dtype": INPUT_DTYPE,
            "output_names": output_names,
            "methods": methods,
            "buckets": lengths,
            "dynamic": dynamic,
            "max_sequence": max_length,
        }
        embedded.setdefault("precision", "int8" if int8 else "fp32")
        if quantization:
            embedded.setdefault("scheme", quantization["scheme"])
        text = json.dumps(embedded, sort_keys=True)
        constants = {
            METADATA_METHOD: text,
            METADATA_BYTES_METHOD: torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8),
        }
        edge = to_edge_transform_and_lower(
            programs,
            transform_passes=[_drop_noop_expands, _infer_symbolic_view_dims],
            partitioner=[XnnpackPartitioner()],
            constant_methods=constants,
            # embedding_byte is an ExecuTorch kernel, not a core ATen op, which the edge verifier would refuse
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
        )
        ops = _op_summary(edge, programs)
        data = edge.to_executorch().buffer
    path = Path(path)
    _write_atomic(path, data)
    return {
        "methods": methods,
        "buckets": lengths,
        "dynamic": dynamic,
        "max_sequence": max_length,
        "input_names": list(INPUT_NAMES),
        "input_dtype": INPUT_DTYPE,
        "output_names": output_names,
        "metadata_method": METADATA_METHOD,
        "metadata_bytes_method": METADATA_BYTES_METHOD,
        "metadata": embedded,
        "size_bytes": len(data),
        "ops": ops,
        **({"quantization": quantization} if quantization else {}),
    }
