"""int8 for ExecuTorch's XNNPACK backend: dynamic int8 linears and an int8 word-embedding table.

Two mechanisms, one per kind of weight, each the one ExecuTorch 1.5 runs natively:

* **Linear layers**: PT2E with ExecuTorch's ``XNNPACKQuantizer`` and
  ``get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)``: int8 weights, one symmetric scale
  per output channel (range ±127), and activations quantized to int8 at every call (asymmetric, range -128..127,
  parameters computed from the tensor at run time). The XNNPACK partitioner lowers each such linear to XNNPACK's
  ``QD8`` fully-connected kernel (int8 × int8 products with int32 accumulation, fp32 output).
* **Word embeddings**: XNNPACK has no gather, so the table is swapped for :class:`Int8Embedding`, which calls
  ExecuTorch's ``quantized_decomposed::embedding_byte`` kernel (int8 table, one fp32 scale per row, symmetric,
  range ±127). The kernel lives in ExecuTorch's quantized kernel library (``executorch.kernels.quantized``
  registers it in the Python runtime; an app needs those kernels linked).

Position and token-type embeddings stay float: the wrapper slices their weight (``weight[:S]``) instead of
calling the module, and they hold ``512 × H`` numbers (1.5 MB for H = 768), about 2 % of an int8 DistilBERT-base.

Module names are those of ``module.named_modules()`` of the deployment wrapper (``encoder.base.…`` for encoder
layers, ``head.…`` for task heads); :func:`pocketbert.wrapper.public_module_name` gives the checkpoint's names.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from pocketbert.errors import PocketbertError
from pocketbert.wrapper import public_module_name

EMBEDDING_QMAX = 127  # symmetric int8 embedding rows: -127..127, as XNNPACK's per-channel weights
SCHEME = "xnnpack-qd8-per-channel+embedding-byte"


def _register_quantized_ops() -> None:
    """Register ``quantized_decomposed::embedding_byte`` for export (exir's pattern module) and in the runtime
    (ExecuTorch's quantized kernel library)."""
    import executorch.exir.passes._quant_patterns_and_replacements  # noqa: F401
    import executorch.kernels.quantized  # noqa: F401


class Int8Embedding(torch.nn.Module):
    """An embedding table stored as int8 rows with one fp32 scale each, looked up by ExecuTorch's
    ``quantized_decomposed::embedding_byte`` kernel.

    ``weight``: int8 ``(V, H)``; ``scales``: float32 ``(V,)``; a row is ``weight[i] * scales[i]``. The forward maps
    integer ``indices`` of any shape ``(…)`` to float32 ``(…, H)``.
    """

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        table = table.detach().to(torch.float32)
        scales = (table.abs().amax(dim=1) / EMBEDDING_QMAX).clamp(min=1e-12)  # (V,)
        q = torch.round(table / scales[:, None]).clamp(-EMBEDDING_QMAX, EMBEDDING_QMAX).to(torch.int8)  # (V, H)
        self.register_buffer("weight", q)
        self.register_buffer("scales", scales)
        self.num_embeddings, self.embedding_dim = q.shape

    def dequantized(self) -> torch.Tensor:
        """The float32 ``(V, H)`` table this module computes with."""
        return self.weight.float() * self.scales[:, None]

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized_decomposed.embedding_byte.default(
            self.weight, self.scales, None, -EMBEDDING_QMAX, EMBEDDING_QMAX, indices
        )


def _word_embedding_names(module: Any) -> list[str]:
    """Names of the embedding tables the forward looks up by calling the module (word embeddings)."""
    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Embedding) and name.endswith("word_embeddings")
    ]


def weight_units(module: Any) -> list[tuple[str, str]]:
    """Every module :func:`quantize_int8` quantizes, as ``(name, public name)`` in the order one forward calls them.

    ``name`` is the module's ``module.named_modules()`` name (what ``float_modules`` takes), ``public name`` the
    checkpoint's (:func:`pocketbert.wrapper.public_module_name`): the word embeddings first, then every linear
    layer. ``module`` is the deployment wrapper; it is run once on an 8-token input.
    """
    names = {m: n for n, m in module.named_modules()}
    embeddings = set(_word_embedding_names(module))
    calls: list[str] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append(names[mod]))
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) or name in embeddings
    ]
    try:
        ids = torch.ones((1, 8), dtype=torch.long)
        with torch.inference_mode():
            module(ids, torch.ones_like(ids))
    finally:
        for hook in hooks:
            hook.remove()
    seen: dict[str, None] = {}
    for name in calls:
        seen.setdefault(name, None)
    return [(name, public_module_name(name)) for name in seen]


def resolve_float_modules(module: Any, float_modules: Iterable[str]) -> set[str]:
    """``float_modules`` as ``named_modules()`` names: each may be that name or the public one; an unknown name is
    a one-line error listing what would be valid."""
    units = weight_units(module)
    by_public = {public: name for name, public in units}
    valid = {name for name, _ in units}
    resolved: set[str] = set()
    for requested in float_modules:
        name = requested if requested in valid else by_public.get(requested)
        if name is None:
            shown = ", ".join(public for _, public in units[:6])
            raise PocketbertError(
                f"float module {requested!r} is not a quantizable module of this model ({len(units)} are, e.g. "
                f"{shown}, …)"
            )
        resolved.add(name)
    return resolved


def _set_submodule(root: Any, name: str, new: Any) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def quantize_embeddings(module: Any, keep_float: set[str]) -> list[str]:
    """Swap every word-embedding table of ``module`` (in place) for :class:`Int8Embedding`, except those named in
    ``keep_float``; returns the names swapped."""
    _register_quantized_ops()
    swapped = []
    for name in _word_embedding_names(module):
        if name in keep_float:
            continue
        _set_submodule(module, name, Int8Embedding(module.get_submodule(name).weight))
        swapped.append(name)
    return swapped


def _weight_owners(model: torch.nn.Module) -> dict[str, str]:
    """Every name a parameter is reachable by (``head.bert.…`` and ``encoder.base.…`` are one BERT) -> the
    ``named_modules()`` name of the module that owns it."""
    owner: dict[int, str] = {}
    for name, module in model.named_modules():
        for param in module.parameters(recurse=False):
            owner.setdefault(id(param), name)
    return {alias: owner[id(p)] for alias, p in model.named_parameters(remove_duplicate=False) if id(p) in owner}


def _linear_filter(float_linears: set[str], owners: dict[str, str]) -> Any:
    """An XNNPACKQuantizer filter: False for a linear whose weight belongs to a module in ``float_linears``.

    The quantizer's own ``set_module_name`` cannot exclude a module (it asserts a config), and both the module path
    in ``nn_module_stack`` and the parameter name ``torch.export`` picks may be any alias of a shared module, so the
    filter maps the weight's parameter name to its owning module through ``owners``.
    """

    def keep(node: torch.fx.Node) -> bool:
        if node.target != torch.ops.aten.linear.default:
            return True
        target = getattr(node.args[1], "target", None)
        return not (isinstance(target, str) and owners.get(target) in float_linears)

    return keep


def quantize_int8(module: Any, example: Sequence[Any], dynamic_shapes: Any, float_modules: Iterable[str] = ()) -> dict:
    """The deployment wrapper with int8 weights, ready for ``torch.export``.

    Args:
        module: the deployment wrapper (not changed: a deep copy is quantized).
        example: example inputs ``(input_ids, attention_mask)``, int64 ``(1, S)``.
        dynamic_shapes: ``torch.export`` dynamic shapes for ``example`` (a symbolic sequence axis lets the result
            be exported again at other lengths), or ``None``.
        float_modules: modules to keep float, by ``named_modules()`` or public name (see :func:`weight_units`).

    Returns:
        ``{"module": the quantized torch.fx.GraphModule, "float_modules": sorted names asked to stay float,
        "int8_linears": count, "float_linears": count, "float_linear_modules": names, "int8_embeddings": names}``,
        the linear counts and names read from the quantized graph itself.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    keep_float = resolve_float_modules(module, float_modules)
    model = copy.deepcopy(module).eval()
    embeddings = quantize_embeddings(model, keep_float)
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    float_linears = keep_float & linears
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    owners = _weight_owners(model)
    quantizer.set_filter_function(_linear_filter(float_linears, owners))
    graph = torch.export.export(model, tuple(example), dynamic_shapes=dynamic_shapes).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        prepared(*example)  # dynamic activations need no calibration; this runs the weight observers
    converted = convert_pt2e(prepared)
    int8_count, float_names = _linear_precisions(converted, owners)
    return {
        "module": converted,
        "float_modules": sorted(keep_float),
        "int8_linears": int8_count,
        "float_linears": len(float_names),
        "float_linear_modules": float_names,
        "int8_embeddings": embeddings,
    }


def _linear_precisions(graph: torch.fx.GraphModule, owners: dict[str, str]) -> tuple[int, list[str]]:
    """Read from a converted PT2E graph: how many linears take an int8 weight (dequantized per channel, which
    XNNPACK fuses into its int8 kernel), and the names of those that take a float weight."""
    dequantize = {
        torch.ops.quantized_decomposed.dequantize_per_channel.default,
        torch.ops.quantized_decomposed.dequantize_per_tensor.default,
    }
    int8_count, float_names = 0, []
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.linear.default:
            continue
        weight = node.args[1]
        if weight.op == "call_function" and weight.target in dequantize:
            int8_count += 1
        else:
            target = str(weight.target)
            float_names.append(owners.get(target, target.removesuffix(".weight")))
    return int8_count, sorted(float_names)
