"""``--check RULES.toml``: gate CI on speed-up ratios, never on absolute milliseconds.

Absolute times on a shared CI machine are noise; a ratio between two runners timed in the same interleaved rounds
is not. A rules file is a list of ``[[rule]]`` tables::

    [[rule]]
    runner = "onnx-int8"      # a runner of the report (artifact name, pytorch-fp32, pytorch-int8)
    seq = 128                 # optional: omitted = every length the runner was measured at
    min_speedup = 4.0         # median(vs) / median(runner) must be at least this
    vs = "baseline"           # optional: baseline (default), pytorch-fp32, or any other runner
    use = "value"             # optional: "value" (the point estimate, default) or "ci_low" (its 95% CI low end)

A rule whose runner failed, was not measurable, or was not applicable at that length is a miss: CI must not pass
because a runner silently disappeared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.runtime_bench.specs import BASELINE
from pocketbert.runtime_bench.stats import paired_ratio
from pocketbert.tomlfile import read_toml

KEYS = {"runner", "seq", "min_speedup", "vs", "use"}
ABSOLUTE_HINTS = ("ms", "millisecond", "second", "latency", "time", "max_", "throughput")


@dataclass(frozen=True)
class Rule:
    """``runner`` at ``seq`` (``None`` = every length) must be ``min_speedup`` times faster than ``vs``."""

    runner: str
    min_speedup: float
    seq: int | None = None
    vs: str = BASELINE
    use: str = "value"

    def describe(self) -> str:
        where = f"at seq {self.seq}" if self.seq is not None else "at every length"
        bound = " (95% CI low end)" if self.use == "ci_low" else ""
        return f"{self.runner} {where} at least {self.min_speedup:g}x faster than {self.vs}{bound}"


@dataclass(frozen=True)
class RuleResult:
    """One rule at one length: passed or not, the measured ratio (``None`` when not measured) and why."""

    rule: Rule
    seq: int | None
    passed: bool
    value: float | None
    detail: str


def _rule(index: int, table: Any, path: Path) -> Rule:
    where = f"{path} rule {index + 1}"
    if not isinstance(table, dict):
        raise PocketbertError(f"{where} is not a table; write [[rule]] blocks")
    unknown = sorted(set(table) - KEYS)
    absolute = [k for k in unknown if any(h in k.lower() for h in ABSOLUTE_HINTS)]
    if absolute:
        raise PocketbertError(
            f"{where}: {absolute[0]!r} gates on absolute time, which is noise on shared machines; "
            "gate on ratios with min_speedup"
        )
    if unknown:
        raise PocketbertError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(KEYS))}")
    if "runner" not in table or "min_speedup" not in table:
        raise PocketbertError(f'{where} needs runner and min_speedup, e.g. runner = "onnx-int8", min_speedup = 2.0')
    speedup, seq, use = table["min_speedup"], table.get("seq"), table.get("use", "value")
    if isinstance(speedup, bool) or not isinstance(speedup, int | float) or speedup <= 0:
        raise PocketbertError(f"{where}: min_speedup must be a positive number, got {speedup!r}")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 2):
        raise PocketbertError(f"{where}: seq must be a length in tokens (an integer >= 2), got {seq!r}")
    if use not in ("value", "ci_low"):
        raise PocketbertError(f'{where}: use must be "value" or "ci_low", got {use!r}')
    return Rule(str(table["runner"]), float(speedup), seq, str(table.get("vs", BASELINE)), use)


def load_rules(path: Path) -> list[Rule]:
    """Parse a rules file, with a one-line error naming the file and the rule for anything wrong."""
    path = Path(path)
    data = read_toml(path, "rules file")
    extra = sorted(set(data) - {"rule"})
    if extra:
        raise PocketbertError(f"rules file {path}: unknown section {extra[0]!r}; write [[rule]] blocks")
    tables = data.get("rule")
    if not isinstance(tables, list) or not tables:
        raise PocketbertError(f"rules file {path} has no [[rule]] blocks")
    return [_rule(i, t, path) for i, t in enumerate(tables)]


def check_names(rules: list[Rule], runners: list[str]) -> None:
    """One-line error when a rule names a runner the bench does not have (before anything is measured)."""
    for rule in rules:
        for name in (rule.runner, rule.vs):
            if name not in runners:
                raise PocketbertError(f"rule '{rule.describe()}' names {name!r}; runners: {', '.join(runners)}")


def _cells(report: dict[str, Any]) -> dict[tuple[str, int], dict]:
    return {(c["runner"], c["seq"]): c for c in report["cells"]}


def _ratio(report: dict[str, Any], rule: Rule, seq: int) -> tuple[dict[str, float] | None, str]:
    cells = _cells(report)
    cell, ref = cells.get((rule.runner, seq)), cells.get((rule.vs, seq))
    for name, c in ((rule.runner, cell), (rule.vs, ref)):
        if c is None:
            return None, f"{name} was not run at seq {seq}"
        if c["status"] != "ok":
            return None, f"{name} at seq {seq} is {c['status']}: {c['reason']}"
    keys = {BASELINE: "speedup_vs_baseline", "pytorch-fp32": "speedup_vs_student_fp32"}
    if rule.vs in keys and cell.get(keys[rule.vs]):
        return cell[keys[rule.vs]], ""
    ratio = paired_ratio(np.asarray(ref["samples_ms"]), np.asarray(cell["samples_ms"]))
    return {"value": ratio.value, "ci_low": ratio.ci_low, "ci_high": ratio.ci_high}, ""


def evaluate(rules: list[Rule], report: dict[str, Any]) -> list[RuleResult]:
    """Every rule against a bench report (the dict of :func:`pocketbert.runtime_bench.bench.run_bench`)."""
    results = []
    seqs = report["settings"]["seqs"]
    for rule in rules:
        for seq in [rule.seq] if rule.seq is not None else seqs:
            if seq not in seqs:
                results.append(RuleResult(rule, seq, False, None, f"seq {seq} was not measured (measured: {seqs})"))
                continue
            ratio, why = _ratio(report, rule, seq)
            if ratio is None:
                results.append(RuleResult(rule, seq, False, None, why))
                continue
            value = ratio["ci_low"] if rule.use == "ci_low" else ratio["value"]
            passed = value >= rule.min_speedup
            detail = f"{value:.2f}x (CI {ratio['ci_low']:.2f}-{ratio['ci_high']:.2f}), need {rule.min_speedup:g}x"
            results.append(RuleResult(rule, seq, passed, value, detail))
    return results
