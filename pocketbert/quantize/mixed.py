"""Parity-budgeted mixed precision, independent of the format.

A *unit* is one quantizable weight op (an ONNX MatMul or Gather, a TFLite fully-connected op, a Core ML linear).
The search quantizes everything; if the budget holds it stops. Otherwise it measures each unit's *sensitivity*
(the error when that unit alone is int8), and keeps the most sensitive units in float, one more at a time, until
the budget holds on the calibration texts. Quantization error does not add up monotonically (errors of two layers
can cancel), so the search walks the ranking instead of bisecting it.

A budget is a comma list of ``metric>=value`` gates, with the short names ``cosine`` (every output's worst
cosine), ``spearman`` (embedding rank agreement) and ``agreement`` (the task's top-1/token/span agreement), or any
metric name of :mod:`pocketbert.parity.metrics`: ``--budget 'cosine>=0.995,spearman>=0.995'``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pocketbert.core.runner import Feed, Runner
from pocketbert.errors import PocketbertError
from pocketbert.parity.gates import Gate, expand, validate_gate_key
from pocketbert.tasks import Task

ALIASES = {
    "cosine": ["*.cosine_min"],
    "spearman": ["rank_spearman"],
    "agreement": ["top1_agreement", "token_agreement", "span_agreement"],
}
_GATE = re.compile(r"^\s*([A-Za-z0-9_.*]+)\s*(>=|<=)\s*([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class Unit:
    """One quantizable op: ``name`` as the quantizer knows it, ``module`` as the model author knows it."""

    name: str
    module: str


@dataclass
class MixedPrecisionResult:
    """What the search kept in float and why, and the metrics it reached on the calibration texts."""

    budget: str
    met: bool
    float_units: list[dict[str, Any]] = field(default_factory=list)  # name, module, sensitivity
    metrics: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    units_total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_budget(text: str) -> list[Gate]:
    """``"cosine>=0.995,spearman>=0.99"`` -> gates, with a one-line error for anything else."""
    gates: list[Gate] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _GATE.match(part)
        if not match:
            raise PocketbertError(f"budget {part!r} is not 'metric>=value'; e.g. --budget 'cosine>=0.995'")
        name, op, value = match.group(1), match.group(2), float(match.group(3))
        for metric in ALIASES.get(name, [name]):
            validate_gate_key(metric, "the budget")
            gate = Gate(metric, value)
            if gate.op != op:
                raise PocketbertError(f"budget {part!r}: {metric} is bounded with {gate.op}, not {op}")
            gates.append(gate)
    if not gates:
        raise PocketbertError("empty budget; e.g. --budget 'cosine>=0.995'")
    return gates


def failures(gates: list[Gate], metrics: dict[str, float]) -> list[str]:
    """The gates ``metrics`` misses, as ``metric=value`` strings (empty when the budget holds)."""
    missed = []
    for gate in expand(gates, metrics):
        value = metrics.get(gate.metric)
        if not gate.check(value):
            missed.append(f"{gate.metric}={value}")
    return missed


def worst_cosine(metrics: dict[str, float]) -> float:
    """The lowest ``*.cosine_min`` over all outputs: the sensitivity score of one unit."""
    return min(v for k, v in metrics.items() if k.endswith(".cosine_min"))


Evaluate = Callable[[set[str]], dict[str, float]]


def search(
    units: list[Unit], evaluate: Evaluate, budget: str, notify: Callable[[str], None] | None = None
) -> MixedPrecisionResult:
    """Keep the fewest most-sensitive units float so that ``budget`` holds.

    Args:
        units: every quantizable unit of the model.
        evaluate: quantizes exactly the named units, runs the calibration feeds, and returns parity metrics
            against the float model.
        budget: the gates to meet (see :func:`parse_budget`).
        notify: called with a line at each stage (the CLI prints it: a search takes minutes on real models).

    Raises:
        PocketbertError: the budget does not hold even with every unit in float (it cannot be a quantization
            problem then: the gate is tighter than the float model's own numerics).
    """
    gates = parse_budget(budget)
    result = MixedPrecisionResult(budget=budget, met=False, units_total=len(units))
    names = {u.name for u in units}
    metrics = evaluate(names)
    result.evaluations = 1
    if not failures(gates, metrics):
        result.met, result.metrics = True, metrics
        return result
    say = notify or (lambda _line: None)
    say(f"budget: all int8 misses ({', '.join(failures(gates, metrics))}); measuring {len(units)} weight ops")
    sensitivity: dict[str, float] = {}
    for unit in units:
        sensitivity[unit.name] = 1.0 - worst_cosine(evaluate({unit.name}))
        result.evaluations += 1
    ranked = sorted(units, key=lambda u: sensitivity[u.name], reverse=True)
    for k in range(1, len(ranked) + 1):
        kept = ranked[:k]
        metrics = evaluate(names - {u.name for u in kept})
        result.evaluations += 1
        if not failures(gates, metrics):
            result.met, result.metrics = True, metrics
            result.float_units = [
                {"name": u.name, "module": u.module, "sensitivity": round(sensitivity[u.name], 8)} for u in kept
            ]
            say(f"budget: met with {k} of {len(units)} weight ops float ({result.evaluations} trials)")
            return result
    raise PocketbertError(
        f"budget {budget!r} is not met even with every weight in float ({', '.join(failures(gates, metrics))}); "
        "loosen it"
    )


def search_trials(
    units: list[Unit],
    budget: str,
    task: Task,
    feeds: list[Feed],
    reference: list[dict[str, Any]],
    build: Callable[[list[str], Path], None],
    runner: Callable[[Path], Runner],
    filename: str,
    notify: Callable[[str], None] | None = None,
) -> MixedPrecisionResult:
    """:func:`search` for any format: ``build(float_names, path)`` writes the artifact quantized except
    ``float_names`` to ``path`` (``filename`` in a temporary directory), ``runner(path)`` runs it on ``feeds``, and
    parity's own metrics compare its outputs with ``reference`` (the float model's on the same feeds)."""
    from pocketbert.parity.metrics import compare_outputs

    with tempfile.TemporaryDirectory(prefix="pocketbert-trial-") as tmp:
        path = Path(tmp) / filename

        def evaluate(quantized: set[str]) -> dict[str, float]:
            build([u.name for u in units if u.name not in quantized], path)
            with runner(path) as trial:
                outputs = [trial.infer(feed) for feed in feeds]
            return compare_outputs(task, feeds, reference, outputs)

        return search(units, evaluate, budget, notify)


def torch_weight_modules(module: Any, feed: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, weight shape)`` of every ``Linear``/``Embedding`` of ``module`` (the deployment wrapper) in the
    order one forward pass over ``feed`` calls them, which is the order their ops appear in a converted graph."""
    import torch

    from pocketbert.wrapper import public_module_name

    calls: list[tuple[str, tuple[int, ...]]] = []
    names = {m: public_module_name(n) for n, m in module.named_modules()}
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append((names[mod], tuple(mod.weight.shape))))
        for m in module.modules()
        if isinstance(m, torch.nn.Linear | torch.nn.Embedding)
    ]
    try:
        with torch.inference_mode():
            module(*(torch.as_tensor(feed[k]) for k in ("input_ids", "attention_mask")))
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def module_labels(shapes: list[tuple[int, ...]], modules: list[tuple[str, tuple[int, ...]]] | None) -> list[str] | None:
    """Names for weight ops of a converted graph from :func:`torch_weight_modules`: the ops, in graph order, are
    matched in order to the modules with the same weight shape (a module the converter folded away, such as a
    position-embedding lookup turned into a constant slice, is skipped). ``None`` unless every op is matched."""
    if modules is None:
        return None
    labels: list[str] = []
    remaining = iter(modules)
    for shape in shapes:
        match = next((name for name, m_shape in remaining if tuple(m_shape) == tuple(shape)), None)
        if match is None:
            return None
        labels.append(match)
    return labels
