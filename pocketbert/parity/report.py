"""Parity reports for people (a table) and for CI (JSON and JUnit XML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pocketbert.export.artifact import write_json_atomic
from pocketbert.parity.comparator import ParityReport


def write_json(report: ParityReport, path: Path) -> None:
    """The whole report as JSON (every metric and gate)."""
    write_json_atomic(path, report.to_dict())


def write_junit(report: ParityReport, path: Path) -> None:
    """JUnit XML: one test case per artifact, failing with the gates it missed (or the error that stopped it)."""
    failures = sum(not a.passed for a in report.artifacts)
    suite = ET.Element(
        "testsuite", name="pocketbert.parity", tests=str(len(report.artifacts)), failures=str(failures), errors="0"
    )
    for artifact in report.artifacts:
        case = ET.SubElement(suite, "testcase", classname=f"parity.{report.task}", name=artifact.name)
        if artifact.error:
            ET.SubElement(case, "failure", message=artifact.error)
        elif artifact.failures:
            message = "; ".join(f"{c.metric}={_fmt(c.value)} (gate {c.op} {c.threshold:g})" for c in artifact.failures)
            ET.SubElement(case, "failure", message=message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.6g}"


def render(report: ParityReport) -> str:
    """A plain-text table: one row per artifact with its worst gate margin and the verdict."""
    lines = [
        f"parity vs {report.reference} on {report.num_sequences} sequences ({report.num_feeds} feeds), "
        f"task {report.task}, model: {report.model}"
    ]
    for artifact in report.artifacts:
        verdict = "PASS" if artifact.passed else "FAIL"
        if artifact.error:
            detail = artifact.error
        else:
            keys = [k for k in artifact.metrics if k.endswith("cosine_min") or "agreement" in k or "spearman" in k]
            detail = ", ".join(f"{k}={artifact.metrics[k]:.6f}" for k in keys)
            if artifact.failures:
                missed = ", ".join(f"{c.metric}={_fmt(c.value)} {c.op} {c.threshold:g}" for c in artifact.failures)
                detail += f" | missed: {missed}"
        lines.append(f"  {verdict}  {artifact.name:<20} {detail}")
    lines.append("parity: " + ("all gates passed" if report.passed else "FAILED"))
    return "\n".join(lines)
