"""Parity gates: thresholds on metrics, per precision family, overridable from a TOML file.

A gate file has one table per precision family (``fp32``, ``fp16``, ``int8``) or per artifact name
(``"onnx-int8"``); artifact tables override family tables, which override the defaults. Keys are metric names
(see :mod:`pocketbert.parity.metrics`); ``*.metric`` applies to every output::

    [int8]
    "*.cosine_min" = 0.99
    rank_spearman = 0.98

    ["onnx-int8"]
    "embedding.cosine_min" = 0.995

Errors (``max_abs``, ``mean_abs``, ``rel_max_abs``) are upper bounds; everything else is a lower bound.
``nonfinite`` is always gated at 0 and cannot be relaxed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.tomlfile import read_toml

UPPER_BOUND_SUFFIXES = ("max_abs", "mean_abs", "rel_max_abs", "nonfinite")
TASK_METRICS = ("top1_agreement", "token_agreement", "span_agreement", "rank_spearman")
OUTPUT_METRICS = ("max_abs", "mean_abs", "rel_max_abs", "cosine_min")

DEFAULT_GATES: dict[str, dict[str, float]] = {
    "fp32": {
        "*.cosine_min": 0.9999,
        "*.rel_max_abs": 2e-3,
        "top1_agreement": 1.0,
        "token_agreement": 0.99,
        "span_agreement": 1.0,
        "rank_spearman": 0.999,
    },
    "fp16": {
        "*.cosine_min": 0.999,
        "*.rel_max_abs": 3e-2,
        "top1_agreement": 0.97,
        "token_agreement": 0.97,
        "span_agreement": 0.9,
        "rank_spearman": 0.99,
    },
    "int8": {
        "*.cosine_min": 0.97,
        "top1_agreement": 0.85,
        "token_agreement": 0.85,
        "span_agreement": 0.7,
        "rank_spearman": 0.95,
    },
}


@dataclass(frozen=True)
class Gate:
    """``metric <op> threshold`` where op is ``<=`` for error metrics and ``>=`` otherwise."""

    metric: str
    threshold: float

    @property
    def op(self) -> str:
        return "<=" if self.metric.endswith(UPPER_BOUND_SUFFIXES) else ">="

    def check(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        return value <= self.threshold if self.op == "<=" else value >= self.threshold


def precision_family(precision: str) -> str:
    """``int8-static`` -> ``int8``; ``fp16`` -> ``fp16``."""
    return precision.split("-", 1)[0]


def validate_gate_key(key: str, where: str) -> None:
    """One-line error unless ``key`` is a task metric or ``<output>.<metric>`` (``<output>`` may be ``*``)."""
    metric = key.split(".", 1)[1] if "." in key else key
    if "." in key and metric in OUTPUT_METRICS:
        return
    if "." not in key and key in TASK_METRICS:
        return
    valid = ", ".join([f"<output>.{m}" for m in OUTPUT_METRICS] + list(TASK_METRICS))
    raise PocketbertError(f"unknown gate {key!r} in {where}; valid: {valid} (<output> may be *)")


def load_gate_file(path: Path) -> dict[str, dict[str, float]]:
    """Read a gates TOML file (see the module docstring) with one-line errors."""
    data = read_toml(path, "gate file")
    tables: dict[str, dict[str, float]] = {}
    for table, values in data.items():
        if not isinstance(values, dict):
            raise PocketbertError(f'gate file {path}: {table!r} must be a table like [int8] or ["onnx-int8"]')
        for key, value in values.items():
            validate_gate_key(key, f"{path} [{table}]")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise PocketbertError(f"gate {table}.{key} in {path} must be a number, got {value!r}")
        tables[table] = {k: float(v) for k, v in values.items()}
    return tables


def gates_for(artifact_name: str, precision: str, overrides: dict[str, dict[str, float]] | None = None) -> list[Gate]:
    """The gates an artifact must pass: defaults, then the file's family table, then its artifact table."""
    family = precision_family(precision)
    merged: dict[str, float] = dict(DEFAULT_GATES.get(family, DEFAULT_GATES["int8"]))
    for table in (family, artifact_name):
        merged.update((overrides or {}).get(table, {}))
    gates = [Gate(metric, threshold) for metric, threshold in merged.items()]
    return gates + [Gate("nonfinite", 0.0)]


def expand(gates: list[Gate], metrics: dict[str, Any]) -> list[Gate]:
    """Resolve gates against one artifact's metrics.

    ``*.metric`` becomes one gate per output present; an explicit ``<output>.metric`` overrides it. Task gates of
    other tasks are dropped. An explicit gate naming an output the model lacks stays, and fails as missing.
    """
    thresholds: dict[str, float] = {}
    for gate in gates:
        if gate.metric.startswith("*."):
            suffix = gate.metric[1:]
            for name in metrics:
                if name.endswith(suffix):
                    thresholds.setdefault(name, gate.threshold)
    for gate in gates:
        if gate.metric.startswith("*."):
            continue
        if "." in gate.metric or gate.metric in metrics or gate.metric == "nonfinite":
            thresholds[gate.metric] = gate.threshold
    return [Gate(metric, threshold) for metric, threshold in thresholds.items()]
