"""Parity reports for people (a table) and for CI (JSON and JUnit XML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pocketbert.core.artifact import write_json_atomic
from pocketbert.parity.comparator import ParityReport
from pocketbert.parity.matrix import declined_by_family, distinct_kernels, execution_label, runtime_label


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
        case = ET.SubElement(suite, "testcase", classname=f"parity.{report.task}", name=artifact.label)
        facts = artifact.kernel_facts
        if facts:
            props = ET.SubElement(case, "properties")
            for key in KERNEL_FACT_KEYS:
                if facts.get(key) is not None:
                    ET.SubElement(props, "property", name=f"kernels.{key}", value=str(facts[key]))
        if artifact.error:
            ET.SubElement(case, "failure", message=artifact.error)
        elif artifact.failures:
            message = "; ".join(f"{c.metric}={_fmt(c.value)} (gate {c.op} {c.threshold:g})" for c in artifact.failures)
            ET.SubElement(case, "failure", message=message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


KERNEL_FACT_KEYS = ("family", "execution", "isa", "cpu", "int8_kernels", "runtime", "runtime_version", "emulator")


def kernels_line(facts: dict) -> str:
    """``aarch64 cortex-a76 (dotprod), onnxruntime 1.31.1, emulated by qemu-aarch64-static 7.2.22``."""
    if not facts:
        return "unknown kernels"
    how = execution_label(facts)
    how = f"emulated by {how}" if facts.get("execution") == "emulated" else how
    return f"{facts.get('isa')} {facts.get('cpu')} ({facts.get('int8_kernels')}), {runtime_label(facts)}, {how}"


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
        lines.append(f"  {verdict}  {artifact.label:<26} {detail}")
    for family, facts in distinct_kernels((a.kernels, a.kernel_facts) for a in report.artifacts):
        lines.append(f"  kernels {family}: {kernels_line(facts)}")
    for family, names, reason in declined_by_family(report.not_run):
        lines.append(f"  not run on {family}: {', '.join(names)} ({reason})")
    lines.append("parity: " + ("all gates passed" if report.passed else "FAILED"))
    return "\n".join(lines)
