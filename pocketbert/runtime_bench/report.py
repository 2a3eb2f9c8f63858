"""Bench reports: schema-versioned JSON, a Markdown table, and two PNG plots (matplotlib, Agg backend).

* ``bench.json``: everything measured, raw samples included, so any number can be recomputed;
* ``bench.md``: one table of latency and ratios per (runner, length), one of size, memory, start-up and fidelity;
* ``bench_latency.png``: median latency (log scale) against sequence length per runner, 95% CI as error bars;
* ``bench_tradeoff.png``: file size against latency at one length, coloured by fidelity.

Every file is written through a temporary file and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import write_json_atomic
from pocketbert.runtime_bench.fidelity import agreement_note, agreement_text

JSON_NAME = "bench.json"
MARKDOWN_NAME = "bench.md"
LATENCY_PNG = "bench_latency.png"
TRADEOFF_PNG = "bench_tradeoff.png"
TRADEOFF_SEQ = 128
REPORT_MODE = 0o644


def _mb(value: int | None) -> str:
    return f"{value / 1e6:.1f}" if value else "–"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio(ratio: dict[str, float] | None) -> str:
    if not ratio:
        return "–"
    return f"{ratio['value']:.2f}× [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]"


def _achieved(cell: dict[str, Any]) -> str:
    if cell.get("achieved_gmacs") is None:
        return "–"
    fraction = cell.get("fraction_of_peak")
    return f"{cell['achieved_gmacs']:.0f} ({fraction:.0%})" if fraction is not None else f"{cell['achieved_gmacs']:.0f}"


def _kernels(facts: dict[str, Any] | None) -> str:
    if not facts:
        return "–"
    return f"{facts.get('isa')} {facts.get('int8_kernels')}, {facts.get('runtime')} {facts.get('runtime_version')}"


def host_capability_lines(report: dict[str, Any]) -> list[str]:
    """What int8 can buy on this host: the measured fp32 and int8 GEMM throughput, as report lines."""
    gemm = report.get("host_gemm")
    if not gemm:
        return []
    if "error" in gemm:
        return [f"- host GEMM throughput: not measured ({gemm['error']})"]
    m, k, n = gemm["shape"]
    facts = gemm.get("kernel_facts") or {}
    verdict = (
        "int8 buys speed here"
        if gemm["int8_speedup"] >= 1.5
        else "int8 buys little or no speed on this CPU: expect int8 artifacts to run about as fast as fp32"
    )
    return [
        f"- what this host can do (ONNX Runtime GEMM {m}x{k}x{n}, {gemm['threads']} threads, median of "
        f"{gemm['runs']}): fp32 {gemm['fp32']['gmacs']:.0f} GMAC/s, int8 {gemm['int8']['gmacs']:.0f} GMAC/s = "
        f"{gemm['int8_speedup']:.2f}x (with the uint8 weights of default ONNX int8 artifacts "
        f"{gemm['int8_u8']['gmacs']:.0f} GMAC/s = {gemm['int8_u8_speedup']:.2f}x); "
        f"int8 kernels: {facts.get('int8_kernels', 'unknown')} "
        f"({facts.get('isa')}, {facts.get('cpu')}); {verdict}. Each cell's GMAC/s is the encoder's multiply-adds "
        "over its median, and its share of the peak of its precision."
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown report: a header of settings and machine, the latency table, the runner table, notes."""
    s, m = report["settings"], report["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    lines = [
        f"# pocketbert bench: {report['student']['source']} vs {report['baseline']['source']}",
        "",
        f"- task {report['student']['task']}; batch {s['batch']}; threads {s['threads']}; {s['repeats']} rounds × "
        f"{s['iterations']} timed inferences after {s.get('settle', 0)} untimed per visit, {s['warmup']} warm-up; "
        f"{s['schedule']}",
        f"- machine: {m['cpu_model']}, {m['usable_cores']} usable / {m['logical_cores']} logical cores; "
        f"flags {' '.join(m['cpu_flags']) or 'unknown'}; {m['os']}; load average {m['load_average']}",
        f"- libraries: {libs}",
        f"- baseline: {report['baseline']['origin'] or report['baseline']['source']}",
        *host_capability_lines(report),
        "",
        "| runner | seq | median ms [95% CI] | p90 ms | p99 ms | IQR ms | seq/s | speed-up vs baseline [95% CI] "
        "| agreement with baseline | vs student fp32 [95% CI] | GMAC/s (of peak) |",
        "|---|---:|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    vs = report["fidelity_vs_baseline"]
    for cell in report["cells"]:
        if cell["status"] != "ok":
            lines.append(
                f"| {cell['runner']} | {cell['seq']} | **{cell['status']}**: {cell['reason']} | | | | | | | | |"
            )
            continue
        lines.append(
            f"| {cell['runner']} | {cell['seq']} | {_ms(cell['median_ms'])} [{_ms(cell['ci_low_ms'])}, "
            f"{_ms(cell['ci_high_ms'])}] | {_ms(cell['p90_ms'])} | {_ms(cell['p99_ms'])} | {_ms(cell['iqr_ms'])} "
            f"| {cell['sequences_per_s']:.1f} | {_ratio(cell['speedup_vs_baseline'])} "
            f"| {agreement_text(vs, cell['runner'])} | {_ratio(cell['speedup_vs_student_fp32'])} | {_achieved(cell)} |"
        )
    lines += [
        "",
        "| runner | runtime | precision | status | size MB | deflated MB | first inference ms | peak RSS MB "
        "| agreement with baseline | kernels |",
        "|---|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for row in report["runners"]:
        first = row.get("first_inference_s")
        status = row["status"] if row["status"] == "ok" else f"**{row['status']}**: {row['error'] or row['reason']}"
        lines.append(
            f"| {row['name']} | {row['runtime']} | {row['precision']} | {status} | {_mb(row.get('size_bytes'))} "
            f"| {_mb(row.get('compressed_bytes'))} | {_ms(first * 1e3) if first is not None else '–'} "
            f"| {_mb(row.get('peak_rss_bytes'))} | {agreement_text(vs, row['name'])} "
            f"| {_kernels(row.get('kernel_facts'))} |"
        )
    lines += ["", agreement_note(vs)]
    lines.append(
        "Speed-up = baseline median / runner median (> 1 is faster); intervals resample the interleaved rounds, "
        "paired. First inference = load + first call. Peak RSS = the runner's own worker process."
    )
    return "\n".join(lines) + "\n"


def _save_figure(figure: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=110, bbox_inches="tight")
        os.chmod(tmp, REPORT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ok_cells(report: dict[str, Any]) -> dict[str, list[dict]]:
    by_runner: dict[str, list[dict]] = {}
    for cell in report["cells"]:
        if cell["status"] == "ok":
            by_runner.setdefault(cell["runner"], []).append(cell)
    return by_runner


def _plain_log_axes(axes: Any) -> None:
    """Log axes labelled with plain numbers (``20``, not ``2x10^1``)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(NullFormatter())


def plot_latency(report: dict[str, Any], path: Path) -> None:
    """Median latency (ms, log scale) against sequence length (log 2) per runner; error bars = 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for name, cells in _ok_cells(report).items():
        x = [c["seq"] for c in cells]
        y = [c["median_ms"] for c in cells]
        err = [[c["median_ms"] - c["ci_low_ms"] for c in cells], [c["ci_high_ms"] - c["median_ms"] for c in cells]]
        style = {"linestyle": "--", "color": "black"} if name == "baseline" else {}
        axes.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name, **style)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    _plain_log_axes(axes)
    axes.set_xticks(report["settings"]["seqs"], [str(s) for s in report["settings"]["seqs"]])
    axes.set_xlabel("sequence length (tokens)")
    axes.set_ylabel(f"median latency per batch of {report['settings']['batch']} (ms, log)")
    axes.set_title(
        f"{report['student']['source']} vs {report['baseline']['source']}, {report['settings']['threads']} threads"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    _save_figure(figure, path)
    plt.close(figure)


def tradeoff_seq(report: dict[str, Any]) -> int:
    """The length the size/latency plot uses: 128 when measured, else the longest measured."""
    seqs = report["settings"]["seqs"]
    return TRADEOFF_SEQ if TRADEOFF_SEQ in seqs else max(seqs)


def _fidelity_value(report: dict[str, Any], name: str) -> tuple[float | None, str]:
    vs = report["fidelity_vs_baseline"]
    if vs["meaningful"] and name in vs["values"]:
        return vs["values"][name], f"{vs['metric']} vs baseline"
    parity = report.get("fidelity_parity", {}).get(name)
    if parity:
        return parity["value"], f"{parity['metric']} vs student PyTorch (parity report)"
    return None, ""


def plot_tradeoff(report: dict[str, Any], path: Path) -> None:
    """Size (MB) against median latency (ms) at :func:`tradeoff_seq`; colour = fidelity where known, grey else."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    seq = tradeoff_seq(report)
    sizes = {r["name"]: r.get("size_bytes") for r in report["runners"]}
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    points, labels = [], set()
    for name, cells in _ok_cells(report).items():
        cell = next((c for c in cells if c["seq"] == seq), None)
        if cell is None or not sizes.get(name):
            continue
        value, label = _fidelity_value(report, name)
        points.append((sizes[name] / 1e6, cell["median_ms"], value, name))
        if label:
            labels.add(label)
    baseline = [p for p in points if p[3] == "baseline"]
    known = [p for p in points if p[2] is not None and p[3] != "baseline"]
    unknown = [p for p in points if p[2] is None and p[3] != "baseline"]
    if known:
        scatter = axes.scatter(
            [p[0] for p in known], [p[1] for p in known], c=[p[2] for p in known], cmap="viridis", s=70
        )
        figure.colorbar(scatter, ax=axes, label="fidelity (" + "; ".join(sorted(labels)) + ")")
    if unknown:
        axes.scatter(
            [p[0] for p in unknown],
            [p[1] for p in unknown],
            c="lightgrey",
            edgecolors="grey",
            s=70,
            label="fidelity unknown",
        )
    if baseline:
        axes.scatter([baseline[0][0]], [baseline[0][1]], marker="*", c="black", s=140, label="baseline")
    if unknown or baseline:
        axes.legend(fontsize=8)
    for size, latency, _value, name in points:
        axes.annotate(name, (size, latency), textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    _plain_log_axes(axes)
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("size on disk (MB, log)")
    axes.set_ylabel(f"median latency at seq {seq} (ms, log)")
    axes.set_title("size / latency / fidelity")
    axes.grid(True, which="both", alpha=0.3)
    _save_figure(figure, path)
    plt.close(figure)


def schema() -> dict[str, Any]:
    """The JSON Schema of ``bench.json`` (``pocketbert/schemas/bench.schema.json``)."""
    import json
    from importlib import resources

    return json.loads(resources.files("pocketbert.schemas").joinpath("bench.schema.json").read_text())


def validate(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``report`` does not follow the schema (a pocketbert bug)."""
    import jsonschema

    jsonschema.validate(report, schema())


def write_reports(report: dict[str, Any], report_dir: Path) -> dict[str, Path]:
    """Write JSON, Markdown and both plots into ``report_dir``; returns their paths by kind."""
    validate(report)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": report_dir / JSON_NAME,
        "markdown": report_dir / MARKDOWN_NAME,
        "latency_png": report_dir / LATENCY_PNG,
        "tradeoff_png": report_dir / TRADEOFF_PNG,
    }
    plot_latency(report, paths["latency_png"])
    plot_tradeoff(report, paths["tradeoff_png"])
    fd, tmp = tempfile.mkstemp(prefix=f".{MARKDOWN_NAME}.", dir=report_dir)
    with os.fdopen(fd, "w") as handle:
        handle.write(render_markdown(report))
    os.chmod(tmp, REPORT_MODE)
    os.replace(tmp, paths["markdown"])
    write_json_atomic(paths["json"], report)
    os.chmod(paths["json"], REPORT_MODE)  # mkstemp files are owner-only; reports are for everyone
    return paths
