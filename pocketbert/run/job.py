"""The main job: [distil →] load → export every format → parity → bench → report, built aside and moved into ``OUT``.

Everything is written into a building directory beside ``OUT`` (same filesystem) and renamed into place only when
every stage has finished, so an interrupted or failed run leaves ``OUT`` exactly as it was. Nothing is reused from
an earlier run but a distilled student whose settings, data and teacher are unchanged
(:mod:`pocketbert.run.distill_stage`): every artifact is rebuilt from the model and the settings of this run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import MANIFEST_NAME, ExportSettings, read_manifest, write_json_atomic
from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.exporting.manifest import model_section
from pocketbert.exporting.options import settings_from
from pocketbert.exporting.pipeline import export_model, validate_request
from pocketbert.formats import get_format
from pocketbert.fsutil import aside_dir, swap_in
from pocketbert.loading import LoadedModel, load_model, moved
from pocketbert.outdir import check_owner, check_target, claim
from pocketbert.parity.matrix import by_artifact, summary
from pocketbert.run.config import STUDENT_DIR, RunConfig
from pocketbert.run.distill_stage import Student, distill_stage
from pocketbert.run.stages import StageLog

REPORT_DIR = "report"
REAL_BASELINE = "bert-base-uncased"
RANDOM_BASELINE = "random:bert-base-uncased"


@dataclass
class RunResult:
    """What a run produced: the output directory, its manifest, the verdicts and the stage timings."""

    out_dir: Path
    manifest: dict[str, Any]
    parity_passed: bool
    parity: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Machine-readable summary (``pocketbert run --json``)."""
        return {
            "out_dir": str(self.out_dir),
            "passed": self.parity_passed,
            "model": self.manifest["model"]["origin"],
            "task": self.manifest["model"]["task"],
            "artifacts": [
                {
                    "name": a["name"],
                    "path": str(self.out_dir / a["path"]),
                    "size_bytes": a["size_bytes"],
                    "parity_passed": a.get("parity", {}).get("passed"),
                }
                for a in self.manifest["artifacts"]
            ],
            "skipped_formats": self.skipped,
            "stages": self.stages,
        }


def resolve_baseline(requested: str | None) -> str:
    """The bench baseline: as asked, else bert-base-uncased when the hub or cache has it, else random weights."""
    if requested:
        return requested
    try:
        load_model(REAL_BASELINE)
    except PocketbertError:
        return RANDOM_BASELINE
    return REAL_BASELINE


def export_settings(config: RunConfig) -> ExportSettings:
    """The export settings of a run configuration (the same builder as ``pocketbert export``'s)."""
    return settings_from(config.export)


def _export_stage(config: RunConfig, loaded: LoadedModel, building: Path, log: StageLog) -> dict[str, str]:
    settings = export_settings(config)
    skipped: dict[str, str] = {}
    for fmt in config.formats:
        try:
            get_format(fmt).check_available()
        except MissingDependencyError as exc:
            skipped[fmt] = str(exc)
            log.skip(f"export {fmt}", f"skipped: {exc}")
            continue
        with log.stage(f"export {fmt}"):
            export_model(loaded, [fmt], list(config.precisions), building, settings, seed=config.seed)
    if not (building / MANIFEST_NAME).is_file():
        raise PocketbertError("no format could be exported: " + "; ".join(skipped.values()))
    return skipped


def _annotate_manifest(building: Path, parity: dict[str, Any] | None, bench: dict[str, Any] | None) -> dict:
    """Add each artifact's parity verdict and latency summary to the manifest."""
    manifest = read_manifest(building)
    matrix = by_artifact(parity)
    latency = (bench or {}).get("latency_summary", {})
    for artifact in manifest["artifacts"]:
        per_family = matrix.get(artifact["name"])
        if per_family:
            # the headline verdict is the host's (else the first family's); every family's is under "kernels"
            headline = per_family.get("host") or next(iter(per_family.values()))
            artifact["parity"] = summary(headline) | {
                "passed": all(v["passed"] for v in per_family.values()),
                "kernels": {family: summary(v) for family, v in per_family.items()},
            }
        if artifact["name"] in latency:
            artifact["latency"] = latency[artifact["name"]]
    write_json_atomic(building / MANIFEST_NAME, manifest)
    return manifest


def run_job(config: RunConfig, log: StageLog) -> RunResult:
    """Run every stage for ``config`` and install the result at ``config.output`` (see the module docstring)."""
    from pocketbert.parity.check import check_kernels, check_parity
    from pocketbert.parity.report import write_json, write_junit
    from pocketbert.report.write import write_reports

    out_dir = Path(config.output)
    validate_request(list(config.formats), list(config.precisions), export_settings(config), skip_missing=True)
    check_target(out_dir, config.force)
    check_kernels(config.kernels)  # an emulator that is not set up is refused before the slow work
    with claim(out_dir):
        building = aside_dir(out_dir, "building")
        work = aside_dir(out_dir, "staging") if config.distill else None  # the student, until it moves in
        try:
            student = distill_stage(config.distill, out_dir, work, log) if config.distill and work else None
            with log.stage("load model") as record:
                loaded = load_model(
                    str(student.path) if student else config.model,
                    config.task,
                    num_labels=config.num_labels,
                    seed=config.seed,
                    tokenizer=config.tokenizer,
                )
                if student:
                    loaded = moved(loaded, student.final)
                record.note = loaded.origin
            check_owner(out_dir, model_section(loaded, config.seed), config.force)
            skipped = _export_stage(config, loaded, building, log)
            with log.stage("parity") as record:
                report = check_parity(
                    building,
                    loaded=loaded,
                    texts_file=Path(config.texts) if config.texts else None,
                    gates_file=Path(config.gates) if config.gates else None,
                    kernels=config.kernels,
                )
                write_json(report, building / REPORT_DIR / "parity.json")
                write_junit(report, building / REPORT_DIR / "junit.xml")
                failed = [a.label for a in report.artifacts if not a.passed]
                record.note = "all gates passed" if not failed else f"FAILED: {', '.join(failed)}"
            parity = report.to_dict()
            bench = None
            if config.bench.enabled:
                with log.stage("bench") as record:
                    bench = run_bench_stage(config, building, record, student)
            else:
                log.skip("bench", "disabled in the configuration")
            with log.stage("report"):
                manifest = _annotate_manifest(building, parity, bench)
                done = [s for s in log.to_list() if s["name"] != "report"]
                write_reports(building, manifest, parity, bench, done, skipped)
            if student:
                student.path.rename(building / STUDENT_DIR)
            swap_in(building, out_dir.absolute())
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        finally:
            if work:
                shutil.rmtree(work, ignore_errors=True)
    return RunResult(out_dir, manifest, report.passed, parity, bench, skipped, log.to_list())


def run_bench_stage(config: RunConfig, out_dir: Path, record: Any, student: Student | None = None) -> dict[str, Any]:
    """Bench every artifact in ``out_dir`` against the baseline (as configured, else a distilled ``student``'s
    teacher, else :func:`resolve_baseline`'s); writes ``report/bench.*`` and returns a summary for the run report:
    notes, a median/speed-up/agreement table, plot file names, and per-runner medians (ms) by length."""
    from pocketbert.runtime_bench.bench import BenchConfig, run_bench
    from pocketbert.runtime_bench.fidelity import agreement_note, agreement_text
    from pocketbert.runtime_bench.report import host_capability_lines, write_reports

    baseline = resolve_baseline(config.bench.baseline or (student.teacher if student else None))
    random = baseline.startswith("random:")
    record.note = f"baseline {baseline}" + (" (random weights: speed only)" if random else "")
    settings = config.bench
    report = run_bench(
        BenchConfig(
            out_dir=out_dir,
            baseline=baseline,
            seqs=settings.seq,
            batch=settings.batch,
            threads=settings.threads,
            repeats=settings.repeats,
            warmup=settings.warmup,
            quick=settings.quick,
            student_source=str(student.path) if student else None,
        )
    )
    paths = write_reports(report, out_dir / REPORT_DIR)
    rows, latency = [], {}
    fidelity = report["fidelity_vs_baseline"]
    for cell in report["cells"]:
        if cell["status"] != "ok":
            rows.append([cell["runner"], str(cell["seq"]), cell["status"], "", cell["reason"] or "", "", ""])
            continue
        speedup = cell.get("speedup_vs_baseline") or {}
        ratio = f"{speedup['value']:.2f}x [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]" if speedup else "—"
        achieved = cell.get("fraction_of_peak")
        share = f"{cell['achieved_gmacs']:.0f} ({achieved:.0%})" if achieved is not None else "—"
        agreement = agreement_text(fidelity, cell["runner"])
        rows.append(
            [
                cell["runner"],
                str(cell["seq"]),
                f"{cell['median_ms']:.2f}",
                f"{cell['iqr_ms']:.2f}",
                ratio,
                agreement,
                share,
            ]
        )
        latency.setdefault(cell["runner"], {})[str(cell["seq"])] = round(cell["median_ms"], 3)
    settings_used = report["settings"]
    notes = [
        f"Baseline {baseline}{' — random weights: speed only' if random else ''}; "
        f"batch {settings_used['batch']}, {settings_used['threads']} threads, {settings_used['repeats']} "
        f"interleaved rounds; {report['machine']['cpu_model']}. Full table: bench.md.",
        agreement_note(fidelity),
        *[line.removeprefix("- ") for line in host_capability_lines(report)],
    ]
    return {
        "notes": notes,
        "table": {
            "header": [
                "runner",
                "seq",
                "median ms",
                "IQR ms",
                "speed-up vs baseline",
                "agreement with baseline",
                "GMAC/s (of host peak)",
            ],
            "rows": rows,
        },
        "plots": [paths["latency_png"].name, paths["tradeoff_png"].name],
        "latency_summary": latency,
    }
