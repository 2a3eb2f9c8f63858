"""Parity verdicts as a matrix: artifact x kernel family (from a parity report's JSON form)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def by_artifact(parity: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{artifact name: {kernel family: verdict dict}}``, artifacts and families in report order."""
    matrix: dict[str, dict[str, dict[str, Any]]] = {}
    for verdict in (parity or {}).get("artifacts", []):
        matrix.setdefault(verdict["name"], {})[verdict.get("kernels", "host")] = verdict
    return matrix


def families(parity: dict[str, Any] | None) -> list[str]:
    """The kernel families asked for (``kernels``) and every family that produced a verdict, in report order: a
    family that declined every artifact keeps its column."""
    seen: dict[str, None] = dict.fromkeys((parity or {}).get("kernels") or [])
    for verdict in (parity or {}).get("artifacts", []):
        seen.setdefault(verdict.get("kernels", "host"), None)
    return list(seen)


def worst_cosine(verdict: dict[str, Any]) -> float | None:
    """The lowest ``*.cosine_min`` metric of a verdict, or None."""
    values = [v for k, v in verdict.get("metrics", {}).items() if k.endswith("cosine_min")]
    return min(values) if values else None


def summary(verdict: dict[str, Any]) -> dict[str, Any]:
    """The part of a verdict the manifest keeps: pass/fail, headline metrics, failed gates, error, kernel facts."""
    metrics = verdict.get("metrics", {})
    keys = [k for k in metrics if k.endswith("cosine_min") or "agreement" in k or "spearman" in k]
    return {
        "passed": verdict["passed"],
        "metrics": {k: metrics[k] for k in keys},
        "failed_gates": [c["metric"] for c in verdict.get("checks", []) if not c["passed"]],
        "error": verdict.get("error"),
        "kernel_facts": verdict.get("kernel_facts", {}),
    }


def distinct_kernels(verdicts: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """``(family, kernel facts)`` once per family and runtime, in order, from ``(family, facts)`` pairs."""
    seen: dict[tuple[str, Any], dict[str, Any]] = {}
    for family, facts in verdicts:
        if facts:
            seen.setdefault((family, facts.get("runtime")), facts)
    return [(family, facts) for (family, _), facts in seen.items()]


def declined_by_family(not_run: list[dict[str, str]]) -> list[tuple[str, list[str], str]]:
    """``(family, artifact names, reason)`` of the pairs a family declined to run (``ParityReport.not_run``), one
    entry per family and reason, in order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for item in not_run:
        grouped.setdefault((item["family"], item["reason"]), []).append(item["artifact"])
    return [(family, names, reason) for (family, reason), names in grouped.items()]


def declined_cells(not_run: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    """``{(artifact, family): matrix cell}`` of the declined pairs: ``not run (int8 only)``."""
    return {(i["artifact"], i["family"]): f"not run ({i.get('label', 'declined')})" for i in not_run}


def runtime_label(facts: dict[str, Any]) -> str:
    """``onnxruntime 1.31.1``."""
    return f"{facts.get('runtime')} {facts.get('runtime_version') or ''}".strip()


def execution_label(facts: dict[str, Any]) -> str:
    """``native``, or the emulator and its CPU model."""
    return str(facts.get("emulator", "QEMU")) if facts.get("execution") == "emulated" else "native"
