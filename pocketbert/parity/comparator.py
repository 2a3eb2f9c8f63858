"""Run every runner on the same feeds, then compare each against the reference (after Polygraphy's Comparator)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pocketbert.core.runner import Feed, Runner
from pocketbert.kernels.families import HOST
from pocketbert.parity.gates import Gate, expand
from pocketbert.parity.metrics import CompareFunc, Outputs, compare_outputs
from pocketbert.tasks import Task


@dataclass
class RunResult:
    """One runner's outputs for every feed, or the error that stopped it, and the kernels that computed them."""

    name: str
    outputs: list[Outputs] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    kernel_facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateCheck:
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool


@dataclass
class ArtifactParity:
    """The verdict for one artifact on one kernel family: its metrics, every gate with its value, and pass/fail.

    ``kernels`` is the family (``host``, ``arm64``, …; ``mil-reference`` for the Core ML MIL runner) and
    ``kernel_facts`` what the runtime saw there (:func:`pocketbert.core.facts.process_facts`).
    """

    name: str
    precision: str
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[GateCheck] = field(default_factory=list)
    error: str | None = None
    kernels: str = HOST
    kernel_facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """``onnx-int8`` on the host (and for reference runners), ``onnx-int8@arm64`` on another family."""
        return self.name if self.kernels in (HOST, "mil-reference") else f"{self.name}@{self.kernels}"

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label, "passed": self.passed}


@dataclass
class ParityReport:
    """Parity of every artifact against one reference, on the same feeds."""

    reference: str
    task: str
    model: str
    num_feeds: int
    num_sequences: int
    artifacts: list[ArtifactParity] = field(default_factory=list)
    kernels: list[str] = field(default_factory=lambda: [HOST])
    not_run: list[dict[str, str]] = field(default_factory=list)  # (artifact, family) pairs a family declines

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "task": self.task,
            "model": self.model,
            "num_feeds": self.num_feeds,
            "num_sequences": self.num_sequences,
            "passed": self.passed,
            "kernels": list(self.kernels),
            "not_run": list(self.not_run),
            "artifacts": [a.to_dict() for a in self.artifacts],
        }


class Comparator:
    """Polygraphy-style: :meth:`run` feeds every runner the same inputs, :meth:`compare_accuracy` judges them."""

    @staticmethod
    def run(runners: list[Runner], feeds: list[Feed]) -> dict[str, RunResult]:
        """Load each runner, run all feeds, close it. A runner that raises is recorded, the others still run."""
        results: dict[str, RunResult] = {}
        for runner in runners:
            result = RunResult(runner.name)
            start = time.perf_counter()
            try:
                with runner:
                    result.kernel_facts = runner.kernel_facts()
                    result.outputs = [runner.infer(feed) for feed in feeds]
            except Exception as exc:  # reported per runner, never hides the other runners' results
                result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            result.seconds = time.perf_counter() - start
            results[runner.name] = result
        return results

    @staticmethod
    def compare_accuracy(
        results: dict[str, RunResult],
        reference: str,
        task: Task,
        feeds: list[Feed],
        gates: dict[str, tuple[str, list[Gate]]],
        compare_func: CompareFunc = compare_outputs,
        artifact_names: dict[str, str] | None = None,
    ) -> list[ArtifactParity]:
        """Compare every result against ``results[reference]``.

        ``gates`` maps a runner name to ``(precision, gates)``; ``compare_func`` computes the metrics;
        ``artifact_names`` maps a runner name to its artifact's when they differ (one artifact on several kernel
        families).
        """
        ref = results[reference]
        verdicts = []
        for name, (precision, artifact_gates) in gates.items():
            result = results[name]
            verdict = ArtifactParity((artifact_names or {}).get(name, name), precision)
            verdict.kernel_facts = dict(result.kernel_facts)
            verdict.kernels = str(result.kernel_facts.get("family", HOST))
            verdict.seconds = round(result.seconds, 3)
            if ref.error:
                verdict.error = f"reference {reference} failed: {ref.error}"
            elif result.error:
                verdict.error = result.error
            else:
                verdict.metrics = compare_func(task, feeds, ref.outputs, result.outputs)
                for gate in expand(artifact_gates, verdict.metrics):
                    value = verdict.metrics.get(gate.metric)
                    verdict.checks.append(GateCheck(gate.metric, gate.op, gate.threshold, value, gate.check(value)))
            verdicts.append(verdict)
        return verdicts
