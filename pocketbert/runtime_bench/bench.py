"""``pocketbert bench``: the full-BERT baseline, the student in PyTorch and every artifact, in one interleaved run.

Order of work: validate everything that can be validated without loading a model (one-line errors); start one
worker per runner and load it (baseline first: without it no ratio exists, so its failure stops the run); time all
runners in interleaved rounds; read their peak memory; compute agreement with the baseline when it means
something; shut the workers down; summarize.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert import __version__
from pocketbert.core.artifact import manifest_artifacts, read_manifest
from pocketbert.core.integrity import verify_output
from pocketbert.errors import PocketbertError
from pocketbert.exporting.manifest import read_tokenizer
from pocketbert.formats import all_formats, get_format
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds
from pocketbert.runtime_bench.fidelity import agreement, agreement_applicable, extra_agreement, parity_fidelity
from pocketbert.runtime_bench.inputs import make_feeds
from pocketbert.runtime_bench.machine import describe_machine, load_average
from pocketbert.runtime_bench.roofline import add_roofline, measure_gemm
from pocketbert.runtime_bench.schedule import run_rounds, visits
from pocketbert.runtime_bench.specs import BASELINE, STUDENT_FP32, STUDENT_INT8, RunnerSpec
from pocketbert.runtime_bench.stats import paired_ratio, summarize
from pocketbert.runtime_bench.worker import SETUP_TIMEOUT_S, Worker, WorkerError, start_worker
from pocketbert.tasks import Task

SCHEMA_VERSION = 1
DEFAULT_SEQS: tuple[int, ...] = (16, 32, 64, 128, 256)
QUICK_SEQS: tuple[int, ...] = (16, 32)
DEFAULT_BASELINE = "bert-base-uncased"


@dataclass
class BenchConfig:
    """What to measure and how often.

    Attributes:
        out_dir: a directory written by ``pocketbert export``.
        baseline: model source of the full-BERT baseline (hub id, directory or ``random:bert-base-uncased``).
        seqs: sequence lengths in tokens; ``None`` = the defaults (lengths beyond the student's limit dropped).
        batch: rows per feed. threads: threads of every runtime. repeats: interleaved rounds ``R``.
        warmup: untimed inferences per length after the first. iterations: timed inferences per visit ``K``.
        settle: untimed inferences at the start of every visit, so a runner is timed with its own weights in
            cache and after the previous runner's thread pool (ONNX Runtime and OpenMP spin after a call) went idle.
        quick: smoke settings (lengths 16 and 32, 3 rounds, 1 warm-up) unless given explicitly.
        student_source: where the PyTorch student runners load the model from instead of the manifest's source
            (``pocketbert run`` benches a distilled student before it is moved to the place the manifest names).
    """

    out_dir: Path
    baseline: str = DEFAULT_BASELINE
    seqs: list[int] | None = None
    batch: int = 1
    threads: int | None = None
    repeats: int | None = None
    warmup: int | None = None
    iterations: int = 1
    settle: int = 1
    quick: bool = False
    student_source: str | None = None  # load the student in PyTorch from here, not the manifest's model source
    extra_specs: list[RunnerSpec] = field(default_factory=list)  # for tests: runners beyond the manifest's


class Hooks:
    """Progress callbacks (no-ops here; the CLI draws a rich progress bar)."""

    def stage(self, description: str, total: int) -> None:
        """A new stage of ``total`` steps begins."""

    def advance(self) -> None:
        """One step of the current stage is done."""

    def note(self, message: str) -> None:
        """Something the user should know (a runner failed, a length was dropped)."""


def default_threads() -> int:
    """Cores this process may use."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_numbers(config: BenchConfig) -> None:
    for value, what, low in (
        (config.threads, "--threads", 1),
        (config.repeats, "--repeats", 1),
        (config.warmup, "--warmup", 0),
        (config.batch, "--batch", 1),
        (config.iterations, "--iterations", 1),
        (config.settle, "--settle", 0),
    ):
        if value is not None and value < low:
            raise PocketbertError(f"{what} must be at least {low}, got {value}")
    if config.seqs is not None:
        if not config.seqs:
            raise PocketbertError("--seq needs at least one length, e.g. --seq 16,32,64,128")
        bad = [s for s in config.seqs if s < 2]
        if bad:
            raise PocketbertError(f"sequence lengths must be at least 2 ([CLS] and [SEP]), got {bad[0]}")


def _resolve(config: BenchConfig, max_positions: int, hooks: Hooks) -> tuple[list[int], int, int, int]:
    """Lengths, threads, repeats and warm-up after defaults and ``--quick``; one-line error for impossible lengths."""
    if config.seqs is None:
        wanted = list(QUICK_SEQS if config.quick else DEFAULT_SEQS)
        seqs = [s for s in wanted if s <= max_positions]
        if len(seqs) < len(wanted):
            hooks.note(f"dropped lengths beyond the student's {max_positions} positions: {wanted[len(seqs) :]}")
    else:
        seqs = sorted(set(config.seqs))
        too_long = [s for s in seqs if s > max_positions]
        if too_long:
            raise PocketbertError(
                f"--seq {too_long[0]} is longer than the student allows ({max_positions} positions); "
                f"use lengths up to {max_positions}"
            )
    threads = config.threads or default_threads()
    repeats = config.repeats if config.repeats is not None else (3 if config.quick else 30)
    warmup = config.warmup if config.warmup is not None else (1 if config.quick else 3)
    return seqs, threads, repeats, warmup


def load_bench_manifest(out_dir: Path) -> dict[str, Any]:
    out_dir = Path(out_dir)
    if not out_dir.exists():
        raise PocketbertError(
            f"artifacts dir {out_dir} does not exist: pass a directory written by 'pocketbert export'"
        )
    if not out_dir.is_dir():
        raise PocketbertError(f"{out_dir} is not a directory: pass a directory written by 'pocketbert export'")
    manifest = read_manifest(out_dir)
    if not manifest_artifacts(manifest):
        raise PocketbertError(f"{out_dir} has no artifacts: run 'pocketbert export MODEL -o {out_dir}' first")
    verify_output(out_dir, manifest, manifest_artifacts(manifest))
    return manifest


def plan_specs(
    manifest: dict[str, Any], out_dir: Path, baseline: str, student_source: str | None = None
) -> list[RunnerSpec]:
    """The baseline, the student fp32 and int8 in PyTorch, and every artifact of the manifest, in that order.

    A random baseline gets the student's task and label count so both run the same kind of head. The PyTorch
    student loads from ``student_source`` when given, else from the manifest's model source.
    """
    model = manifest["model"]
    source, task, labels, seed = (
        student_source or model.get("source") or None,
        model["task"],
        model.get("num_labels"),
        model.get("seed", 0),
    )
    random_baseline = baseline.startswith("random:")
    own = {"tokenizer": model.get("tokenizer")}
    specs = [
        RunnerSpec(
            BASELINE,
            "torch-hf",
            "baseline",
            "pytorch",
            "fp32",
            source=baseline,
            task=task if random_baseline else None,
            num_labels=labels if random_baseline else None,
        ),
        RunnerSpec(STUDENT_FP32, "torch-hf", "student", "pytorch", "fp32", source, task, labels, seed, **own),
        RunnerSpec(STUDENT_INT8, "torch-int8", "student", "pytorch", "int8-dynamic", source, task, labels, seed, **own),
    ]
    for artifact in manifest_artifacts(manifest):
        specs.append(
            RunnerSpec(
                artifact.name,
                "artifact",
                "student",
                get_format(artifact.format).runtime_label,
                artifact.precision,
                out_dir=str(out_dir),
                artifact=artifact.name,
                format=artifact.format,
            )
        )
    return specs


def _static_limits(manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """Artifact name -> (longest length, why) for artifacts with a length limit (static buckets, a bounded
    dynamic axis), as each artifact's format reports it."""
    limits = {}
    for artifact in manifest_artifacts(manifest):
        top = get_format(artifact.format).max_sequence(artifact)
        if top is None:
            continue
        why = "largest static bucket" if artifact.sequence_buckets else "bound of its sequence axis"
        limits[artifact.name] = (top, f"longer than the {why} ({top})")
    return limits


def _not_measurable_here(spec: RunnerSpec) -> str | None:
    """Why ``spec``'s runtime cannot be timed on this machine (its format says), else ``None``."""
    fmt = next((f for f in all_formats() if spec.format == f.name or spec.runtime == f.runtime_label), None)
    return fmt.not_timed_reason() if fmt is not None and spec.kind == "artifact" else None


def _runner_row(spec: RunnerSpec) -> dict[str, Any]:
    return {**spec.to_dict(), "status": "pending", "error": None, "reason": None}


def _start(spec: RunnerSpec, threads: int, feeds: dict, warmup: int, row: dict, hooks: Hooks) -> Worker | None:
    """Start and set up one worker; fills ``row``; returns the worker when it is ready to be timed."""
    worker = start_worker(spec.name, threads)
    try:
        reply = worker.request(
            {"cmd": "setup", "spec": spec, "threads": threads, "feeds": feeds, "warmup": warmup}, SETUP_TIMEOUT_S
        )
    except WorkerError as exc:
        reply = {"status": "failed", "error": str(exc)}
    row["status"] = reply["status"]
    row["error"] = reply.get("error")
    row["reason"] = reply.get("reason")
    for key in ("load_s", "first_inference_s", "idle_rss_bytes", "import_s", "info", "kernel_facts"):
        if key in reply:
            row[key] = reply[key]
    row["cell_errors"] = reply.get("errors", {})
    if row["status"] != "ok":
        hooks.note(f"{spec.name}: {row['status']}: {row['error'] or row['reason']}")
        worker.close()
        return None
    return worker


def _ratio_dict(reference: np.ndarray | None, candidate: np.ndarray | None) -> dict[str, float] | None:
    if reference is None or candidate is None or reference.size == 0 or candidate.size == 0:
        return None
    ratio = paired_ratio(reference, candidate)
    return {"value": ratio.value, "ci_low": ratio.ci_low, "ci_high": ratio.ci_high}


def _read_parity(out_dir: Path) -> dict[str, Any] | None:
    import json

    path = Path(out_dir) / "report" / "parity.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def run_bench(config: BenchConfig, hooks: Hooks | None = None) -> dict[str, Any]:
    """Measure everything described by ``config`` and return the report (see ``docs/bench.md`` for the schema)."""
    hooks = hooks or Hooks()
    _check_numbers(config)
    out_dir = Path(config.out_dir)
    manifest = load_bench_manifest(out_dir)
    model = manifest["model"]
    seqs, threads, repeats, warmup = _resolve(config, int(model["max_positions"]), hooks)
    tokenizer = read_tokenizer(out_dir, "the bench tokenizes with it")
    feeds = make_feeds(tokenizer, seqs, config.batch)
    specs = plan_specs(manifest, out_dir, config.baseline, config.student_source) + list(config.extra_specs)
    limits = _static_limits(manifest)
    started = datetime.now(UTC)
    machine = describe_machine()
    rows = {spec.name: _runner_row(spec) for spec in specs}
    workers: dict[str, Worker] = {}
    cells: dict[str, list[int]] = {}
    na: dict[tuple[str, int], str] = {}
    try:
        hooks.stage("loading runners", len(specs))
        for spec in specs:
            row = rows[spec.name]
            reason = _not_measurable_here(spec)
            if reason:
                row["status"], row["reason"] = "not-measurable", reason
                hooks.note(f"{spec.name}: {reason}")
                hooks.advance()
                continue
            limit = limits.get(spec.name)
            runnable = {s: f for s, f in feeds.items() if limit is None or s <= limit[0]}
            for s in feeds:
                if s not in runnable:
                    na[(spec.name, s)] = limit[1]
            if not runnable:
                row["status"], row["reason"] = "not-applicable", f"every length is {limit[1] if limit else 'too long'}"
                hooks.note(f"{spec.name}: {row['reason']}")
                hooks.advance()
                continue
            worker = _start(spec, threads, runnable, warmup, row, hooks)
            hooks.advance()
            if spec.name == BASELINE and row["status"] != "ok":
                raise PocketbertError(
                    f"baseline {config.baseline} failed: {row['error'] or row['reason']}; pass "
                    "--baseline random:bert-base-uncased (offline) or a local BERT directory"
                )
            if worker is None:
                continue
            workers[spec.name] = worker
            max_positions = (row.get("info") or {}).get("max_positions")
            ok = []
            for s in runnable:
                if max_positions and s > int(max_positions):
                    na[(spec.name, s)] = f"longer than the model's {max_positions} positions"
                elif s in row["cell_errors"]:
                    continue
                else:
                    ok.append(s)
            cells[spec.name] = ok
        hooks.note(f"measuring this host's fp32 and int8 GEMM throughput ({threads} threads)")
        gemm = measure_gemm(threads)
        load_before = load_average()
        hooks.stage(f"timing {len(workers)} runners × {len(seqs)} lengths × {repeats} rounds", visits(cells, repeats))
        timers = {name: _timer(worker, config.settle) for name, worker in workers.items()}
        timed, crashed = run_rounds(timers, cells, seqs, repeats, config.iterations, hooks.advance)
        for name, error in crashed.items():
            rows[name]["status"], rows[name]["error"] = "failed", error
            hooks.note(f"{name}: failed while timing: {error}")
        for name, worker in workers.items():
            if name not in crashed:
                try:
                    rows[name].update(worker.request({"cmd": "memory"}))
                except WorkerError as exc:
                    rows[name]["error"] = f"memory unreadable: {exc}"
        fidelity = _fidelity(manifest, rows, workers, crashed, tokenizer, hooks)
    finally:
        for worker in workers.values():
            worker.close()
    report = _assemble(
        config, manifest, specs, rows, seqs, threads, repeats, warmup, timed, na, fidelity, machine, started
    ) | {"load_average_during": {"before_timing": load_before, "after_timing": load_average()}}
    return add_roofline(report, gemm)


def _timer(worker: Worker, settle: int) -> Any:
    def time_it(seq: int, k: int) -> list[float]:
        return worker.request({"cmd": "time", "seq": seq, "k": k, "settle": settle})

    return time_it


def _fidelity(
    manifest: dict[str, Any],
    rows: dict[str, dict],
    workers: dict[str, Worker],
    crashed: dict[str, str],
    tokenizer: Any,
    hooks: Hooks,
) -> dict[str, Any]:
    """Agreement of every measured student runner with the baseline on the parity texts, when meaningful."""
    baseline_info = rows[BASELINE].get("info") or {}
    student_info = dict(rows[STUDENT_FP32].get("info") or {})
    model = manifest["model"]
    student_info.setdefault("task", model["task"])
    student_info.setdefault("labels", model.get("labels") or [])
    student_info.setdefault("random_weights", str(model.get("source") or "").startswith("random:"))
    task = Task(model["task"])
    from pocketbert.runtime_bench.fidelity import METRICS

    result: dict[str, Any] = {"meaningful": False, "metric": METRICS[task], "note": None, "values": {}, "extra": {}}
    reason = agreement_applicable(baseline_info, student_info)
    if reason:
        result["note"] = reason
        return result
    feeds = build_feeds(tokenizer, list(BUILTIN_TEXTS), int(manifest["max_length"]))
    hooks.stage("agreement with the baseline", len(workers))
    try:
        reference = workers[BASELINE].request({"cmd": "outputs", "feeds": feeds})
    except WorkerError as exc:
        result["note"] = f"baseline outputs failed: {exc}"
        return result
    hooks.advance()
    result["meaningful"] = True
    result["num_sequences"] = sum(int(f["input_ids"].shape[0]) for f in feeds)
    for name, worker in workers.items():
        if name == BASELINE or name in crashed:
            continue
        try:
            outputs = worker.request({"cmd": "outputs", "feeds": feeds})
            result["values"][name] = agreement(task, feeds, reference, outputs)
            extra = extra_agreement(task, feeds, reference, outputs)
            if extra:
                result["extra"][name] = extra
        except WorkerError as exc:
            rows[name].setdefault("notes", []).append(f"agreement failed: {exc}")
        hooks.advance()
    return result


def _assemble(
    config: BenchConfig,
    manifest: dict[str, Any],
    specs: list[RunnerSpec],
    rows: dict[str, dict],
    seqs: list[int],
    threads: int,
    repeats: int,
    warmup: int,
    timed: dict,
    na: dict,
    fidelity: dict[str, Any],
    machine: dict[str, Any],
    started: datetime,
) -> dict[str, Any]:
    """The JSON report: settings, machine, runners, one cell per (runner, length) with stats and ratios."""
    arrays = {key: cell.array() for key, cell in timed.items() if cell.samples}
    cells = []
    for spec in specs:
        row = rows[spec.name]
        for seq in seqs:
            cell: dict[str, Any] = {"runner": spec.name, "seq": seq, "status": "ok", "reason": None}
            samples = arrays.get((spec.name, seq))
            if row["status"] in ("failed", "not-measurable"):
                cell["status"], cell["reason"] = row["status"], row["error"] or row["reason"]
            elif (spec.name, seq) in na:
                cell["status"], cell["reason"] = "not-applicable", na[(spec.name, seq)]
            elif seq in row.get("cell_errors", {}):
                cell["status"], cell["reason"] = "failed", row["cell_errors"][seq]
            elif samples is None:
                cell["status"], cell["reason"] = "failed", "no samples"
            if cell["status"] == "ok":
                stats = summarize(samples, config.batch, seq)
                cell.update(asdict(stats))
                cell["samples_ms"] = (samples * 1e3).round(6).tolist()
                cell["speedup_vs_baseline"] = _ratio_dict(arrays.get((BASELINE, seq)), samples)
                cell["speedup_vs_student_fp32"] = _ratio_dict(arrays.get((STUDENT_FP32, seq)), samples)
            cells.append(cell)
    runners = []
    for spec in specs:
        row = dict(rows[spec.name])
        row.pop("cell_errors", None)
        info = row.pop("info", None) or {}
        row["size_bytes"] = info.get("size_bytes")
        row["compressed_bytes"] = info.get("compressed_bytes")
        row["max_positions"] = info.get("max_positions")
        row["origin"] = info.get("origin")
        row["encoder"] = info.get("encoder")
        row["first_call_s"] = row.get("first_inference_s")
        row["first_inference_s"] = (  # load + first inference: what a user waits for at app start
            row["load_s"] + row["first_call_s"] if row.get("first_call_s") is not None else None
        )
        runners.append(row)
    baseline_row = next(r for r in runners if r["name"] == BASELINE)
    return {
        "schema_version": SCHEMA_VERSION,
        "pocketbert_version": __version__,
        "created": started.isoformat(timespec="seconds"),
        "seconds": round(time.time() - started.timestamp(), 1),
        "artifacts_dir": str(config.out_dir),
        "student": {
            "source": manifest["model"].get("source") or "(embedded default)",
            "origin": manifest["model"].get("origin"),
            "task": manifest["model"]["task"],
        },
        "baseline": {"source": config.baseline, "origin": baseline_row.get("origin")},
        "settings": {
            "seqs": seqs,
            "batch": config.batch,
            "threads": threads,
            "repeats": repeats,
            "warmup": warmup,
            "iterations": config.iterations,
            "settle": config.settle,
            "quick": config.quick,
            "schedule": "interleaved rounds, runner order rotated each round",
            "bootstrap": "2000 resamples of rounds, 95% percentile interval; ratios paired by round",
        },
        "machine": machine,
        "runners": runners,
        "cells": cells,
        "fidelity_vs_baseline": fidelity,
        "fidelity_parity": parity_fidelity(_read_parity(config.out_dir)),
    }
