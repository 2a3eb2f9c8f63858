"""Build the run report (summary verdict, artifacts, parity gates, latency, stages, environment) and write it as
``report/report.md`` and ``report/index.html``."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pocketbert import __version__
from pocketbert.formats import all_formats, libraries
from pocketbert.parity.matrix import (
    by_artifact,
    declined_by_family,
    declined_cells,
    distinct_kernels,
    execution_label,
    families,
    runtime_label,
    worst_cosine,
)
from pocketbert.report.document import Block, Heading, Image, Paragraph, Table, to_html, to_markdown

REPORT_DIR = "report"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 1000 else f"{value:.4g}"
    return "—" if value is None else str(value)


def _artifacts(manifest: dict[str, Any]) -> Table:
    rows, fails = [], set()
    for i, a in enumerate(manifest["artifacts"]):
        parity = a.get("parity") or {}
        metrics = parity.get("metrics", {})
        worst = min((v for k, v in metrics.items() if k.endswith("cosine_min")), default=None)
        task = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if not k.endswith("cosine_min"))
        verdict = {True: "pass", False: "FAIL", None: "not checked"}[parity.get("passed")]
        if parity.get("passed") is False:
            fails.add(i)
        rows.append(
            [a["name"], a["scheme"], f"{a['size_bytes'] / 1e6:.1f} MB", a["sha256"][:12], verdict, _fmt(worst), task]
        )
    header = ["artifact", "scheme", "size", "sha256", "parity", "worst cosine", "task metrics"]
    return Table(header, rows, fails)


def _gates(parity: dict[str, Any]) -> Table:
    rows, fails = [], set()
    for artifact in parity["artifacts"]:
        if artifact["error"]:
            fails.add(len(rows))
            rows.append([artifact.get("label", artifact["name"]), "runner", "", "", artifact["error"], "FAIL"])
        for check in artifact["checks"]:
            if not check["passed"]:
                fails.add(len(rows))
            rows.append(
                [
                    artifact.get("label", artifact["name"]),
                    check["metric"],
                    check["op"],
                    f"{check['threshold']:g}",
                    _fmt(check["value"]),
                    "pass" if check["passed"] else "FAIL",
                ]
            )
    return Table(["artifact", "metric", "op", "gate", "value", "verdict"], rows, fails)


def _kernel_matrix(parity: dict[str, Any]) -> list[Block]:
    """Artifact x kernel family: each cell the verdict and worst cosine; then what each family's runtime saw."""
    columns = families(parity)
    declined = declined_by_family(parity.get("not_run", []))
    cells_declined = declined_cells(parity.get("not_run", []))
    matrix = by_artifact(parity)
    for _, names, _ in declined:  # an artifact every family declined still gets its row
        for name in names:
            matrix.setdefault(name, {})
    rows, fails = [], set()
    for artifact, per_family in matrix.items():
        cells = []
        for family in columns:
            verdict = per_family.get(family)
            if verdict is None:
                cells.append(cells_declined.get((artifact, family), "—"))
                continue
            worst = worst_cosine(verdict)
            cells.append(
                f"{'pass' if verdict['passed'] else 'FAIL'} {_fmt(worst) if worst is not None else ''}".strip()
            )
            if not verdict["passed"]:
                fails.add(len(rows))
        rows.append([artifact, *cells])
    verdicts = ((v.get("kernels", "host"), v.get("kernel_facts") or {}) for v in parity["artifacts"])
    facts_rows = [
        [family, f.get("isa"), f.get("cpu"), f.get("int8_kernels"), runtime_label(f), execution_label(f)]
        for family, f in distinct_kernels(verdicts)
    ]
    notes = [Paragraph(f"Not run on {family}: {', '.join(n)} ({why}).") for family, n, why in declined]
    return [
        Heading("Parity by kernel family"),
        Paragraph(
            "Worst cosine of each artifact on each CPU kernel family it ran on (the PyTorch reference runs on the "
            "host; emulated families are QEMU user-mode guests with the same runtime versions; Core ML runs in its "
            "own runner, once)."
        ),
        Table(["artifact", *columns], rows, fails),
        Table(["family", "ISA", "CPU", "int8 kernels", "runtime", "execution"], facts_rows),
        *notes,
    ]


def build_report(
    out_dir: Path,
    manifest: dict[str, Any],
    parity: dict[str, Any] | None,
    bench: dict[str, Any] | None,
    stages: list[dict[str, Any]],
    skipped: dict[str, str],
) -> list[Block]:
    """The report's blocks (see the module docstring)."""
    model = manifest["model"]
    passed = bool(parity and parity["passed"])
    blocks: list[Block] = [
        Heading("pocketbert report", 1),
        Paragraph(
            "Verdict: every parity gate passed" if passed else "Verdict: parity FAILED — see the gates below",
            "pass" if passed else "fail",
        ),
        Paragraph(f"Model: {model['origin']}. Task `{model['task']}`, architecture `{model['architecture']}`."),
        Paragraph(
            f"Max length {manifest['max_length']} tokens; sequence buckets {manifest['sequence_buckets']}. "
            f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by pocketbert {__version__}."
        ),
        Heading("Artifacts"),
        _artifacts(manifest),
    ]
    if skipped:
        blocks += [Heading("Skipped formats"), Table(["format", "why"], [[k, v] for k, v in skipped.items()])]
    for fmt in all_formats():
        section = fmt.report_section(manifest, out_dir)
        if section is not None:
            table = Table(section.header, section.rows, section.flagged)
            blocks += [Heading(section.heading), Paragraph(section.text), table]
    if parity:
        blocks += [
            Heading("Parity gates"),
            Paragraph(
                f"Against {parity['reference']} on {parity['num_sequences']} sequences ({parity['num_feeds']} "
                "feeds: every built-in text alone and in padded batches)."
            ),
            _gates(parity),
        ]
        blocks += _kernel_matrix(parity)
    if bench:
        blocks += [Heading("Latency vs BERT")]
        blocks += [Paragraph(line) for line in bench.get("notes", [])]
        if bench.get("table"):
            blocks.append(Table(bench["table"]["header"], bench["table"]["rows"]))
        blocks += [Image(out_dir / REPORT_DIR / p, Path(p).stem) for p in bench.get("plots", [])]
    blocks += [
        Heading("Stages"),
        Table(
            ["stage", "seconds", "status", "note"],
            [[s["name"], f"{s['seconds']:.1f}", s["status"], s["note"]] for s in stages],
        ),
        Heading("Environment"),
        Table(
            ["item", "value"],
            [["CPU", _cpu()], ["Python", platform.python_version()], ["pocketbert", __version__]]
            + [[lib, _version(lib)] for lib in libraries()],
        ),
    ]
    return blocks


def write_reports(
    out_dir: Path,
    manifest: dict[str, Any],
    parity: dict[str, Any] | None,
    bench: dict[str, Any] | None,
    stages: list[dict[str, Any]],
    skipped: dict[str, str],
) -> tuple[Path, Path]:
    """Write ``report/report.md`` and ``report/index.html`` under ``out_dir``; returns both paths."""
    report_dir = out_dir / REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_report(out_dir, manifest, parity, bench, stages, skipped)
    markdown, page = report_dir / "report.md", report_dir / "index.html"
    markdown.write_text(to_markdown(blocks, report_dir), encoding="utf-8")
    page.write_text(to_html(blocks, f"pocketbert report: {manifest['model']['origin']}"), encoding="utf-8")
    return markdown, page
