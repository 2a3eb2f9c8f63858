"""Parity verdicts as a matrix: artifact x kernel family (from a parity report's JSON form)."""

from __future__ import annotations

from typing import Any


def by_artifact(parity: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{artifact name: {kernel family: verdict dict}}``, artifacts and families in report order."""
    matrix: dict[str, dict[str, dict[str, Any]]] = {}
    for verdict in (parity or {}).get("artifacts", []):
        matrix.setdefault(verdict["name"], {})[verdict.get("kernels", "host")] = verdict
    return matrix


def families(parity: dict[str, Any] | None) -> list[str]:
    """Every kernel family that produced a verdict, in report order."""
    seen: dict[str, None] = {}
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
