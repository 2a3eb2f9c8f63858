"""Core ML layouts benchmark (not a test): the standard and the Neural Engine (``ane``) layout of one model, fp16 and
int8, single-input packages with enumerated buckets.

Usage::

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/coreml_ane.py [--model MODEL] [--target iOS16]
        [--buckets 32,64,128] [--runs 30] [--out out/bench-coreml-ane]

For each layout it exports ``fp16,int8`` with ``pocketbert.export`` (``coreml_layout``), then:

* **parity** against PyTorch with ``pocketbert.check_parity`` on the built-in texts, always in pocketbert's MIL
  reference runner (``POCKETBERT_COREML_RUNNER=mil``, on every OS, so the numbers compare across machines): worst
  embedding cosine (``embedding.cosine_min``, or the worst ``*.cosine_min`` for other tasks), rank Spearman and the
  gates' verdict;
* **placement**: :func:`pocketbert.formats.coreml.placement.placement` (Core ML's compute plan on macOS, the static
  check elsewhere, labelled as such);
* **latency** on macOS only: Core ML (``MLModel.predict``) per bucket, compute units ``ALL`` and ``CPU_AND_NE``,
  median of ``--runs`` calls after 5 warm-up calls, the models taking turns. Elsewhere latency is "not measurable
  here": the MIL runner is a NumPy reference whose timings say nothing about Core ML, and nothing is estimated.

Writes ``OUT/coreml_ane.json`` and ``OUT/coreml_ane.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS = ("standard", "ane")
PRECISIONS = ("fp16", "int8")
NOT_MEASURABLE = "not measurable here (Core ML runs only on macOS; never estimated)"


def cpu_name() -> str:
    """``lscpu``'s model name (Linux) or ``sysctl``'s brand string (macOS), else the platform's processor."""
    for command in (["lscpu"], ["sysctl", "-n", "machdep.cpu.brand_string"]):
        try:
            text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        for line in text.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
        if command[0] == "sysctl" and text.strip():
            return text.strip()
    return platform.processor() or platform.machine()


def worst_cosine(metrics: dict[str, float]) -> tuple[str, float]:
    """The embedding cosine when the task has one, else the worst ``*.cosine_min``: ``(metric, value)``."""
    if "embedding.cosine_min" in metrics:
        return "embedding.cosine_min", metrics["embedding.cosine_min"]
    name = min((k for k in metrics if k.endswith("cosine_min")), key=lambda k: metrics[k])
    return name, metrics[name]


def latency_ms(paths: dict[str, Path], buckets: list[int], pad_id: int, units: str, runs: int) -> dict[str, Any]:
    """Median Core ML latency (ms) per package and bucket for compute units ``units``, the packages taking turns
    (one call each per round, rotating order) so a load spike slows all alike. macOS only."""
    from pocketbert.formats.coreml.runner import CoreMLRunner

    runners = {name: CoreMLRunner(path, compute_units=units, pad_id=pad_id) for name, path in paths.items()}
    result: dict[str, dict[int, float]] = {name: {} for name in paths}
    try:
        for runner in runners.values():
            runner.load()
        for bucket in buckets:
            ids = np.full((1, bucket), 2000, dtype=np.int32)  # a text that fills the bucket
            ids[0, 0], ids[0, -1] = 101, 102
            feed = {"input_ids": ids, "attention_mask": np.ones((1, bucket), np.int32)}
            times: dict[str, list[float]] = {name: [] for name in paths}
            order = list(runners.items())
            for round_ in range(5 + runs):
                shift = round_ % len(order)
                for name, runner in order[shift:] + order[:shift]:
                    start = time.perf_counter()
                    runner.infer(feed)
                    if round_ >= 5:
                        times[name].append((time.perf_counter() - start) * 1e3)
            for name in paths:
                result[name][bucket] = round(statistics.median(times[name]), 3)
    finally:
        for runner in runners.values():
            runner.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model (default: the embedded all-MiniLM-L6-v2)")
    parser.add_argument("--target", default="iOS16", help="Core ML deployment target")
    parser.add_argument("--buckets", default="32,64,128", help="sequence buckets")
    parser.add_argument("--runs", type=int, default=30, help="timed calls per package and bucket (macOS)")
    parser.add_argument("--out", default="out/bench-coreml-ane", help="output directory")
    args = parser.parse_args()

    os.environ["POCKETBERT_COREML_RUNNER"] = "mil"  # parity in the reference runner on every OS
    from pocketbert.quiet import quiet_third_party

    quiet_third_party()
    import pocketbert
    from pocketbert.core.artifact import manifest_artifacts, read_manifest
    from pocketbert.formats.coreml.placement import placement, summary
    from pocketbert.formats.coreml.runner import coreml_available
    from pocketbert.loading import load_model
    from pocketbert.parity.check import check_parity

    buckets = [int(b) for b in args.buckets.split(",")]
    out = Path(args.out)
    started = time.perf_counter()
    loaded = load_model(args.model)
    rows: list[dict[str, Any]] = []
    packages: dict[str, Path] = {}
    for layout in LAYOUTS:
        layout_out = out / layout
        t0 = time.perf_counter()
        pocketbert.export(
            loaded,
            layout_out,
            formats=["coreml"],
            precisions=list(PRECISIONS),
            buckets=buckets,
            coreml_target=args.target,
            coreml_layout=layout,
            force=True,
        )
        exported = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = check_parity(layout_out, loaded=loaded)  # the loaded reference, not reloaded from disk
        checked = time.perf_counter() - t0
        artifacts = {a.name: a for a in manifest_artifacts(read_manifest(layout_out))}
        for verdict in report.artifacts:
            artifact = artifacts[verdict.name]
            metric, cosine = worst_cosine(verdict.metrics)
            where = placement(artifact, layout_out)
            packages[f"{layout}-{artifact.precision}"] = layout_out / artifact.path
            rows.append(
                {
                    "layout": layout,
                    "artifact": verdict.name,
                    "size_mb": round(artifact.size_bytes / 1e6, 1),
                    "cosine_metric": metric,
                    "cosine_min": cosine,
                    "rank_spearman": verdict.metrics.get("rank_spearman"),
                    "passed": verdict.passed,
                    "failures": verdict.failures,
                    "placement": summary(where),
                    "placement_detail": where,
                    "export_s": round(exported, 1),
                    "parity_s": round(checked, 1),
                }
            )
    latency: dict[str, Any]
    if coreml_available():
        pad = int(loaded.tokenizer.pad_token_id)
        latency = {units: latency_ms(packages, buckets, pad, units, args.runs) for units in ("ALL", "CPU_AND_NE")}
    else:
        latency = {"not_measured": NOT_MEASURABLE}
    result = {
        "model": loaded.origin,
        "target": args.target,
        "buckets": buckets,
        "cpu": cpu_name(),
        "os": platform.platform(),
        "parity_runner": "pocketbert MIL reference runner (NumPy), 64 built-in sequences",
        "rows": rows,
        "latency_ms": latency,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "not_measured": []
        if coreml_available()
        else [
            "Core ML latency (no macOS / Apple hardware here)",
            "Core ML's compute plan (MLComputePlan needs macOS 14.4+); the placement column is the static check",
            "Neural Engine arithmetic: the MIL runner computes fp16 values op by op in NumPy, not Apple's kernels",
        ],
    }
    header = "| layout | artifact | size | worst cosine | rank Spearman | gates | placement |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        spearman = "n/a" if row["rank_spearman"] is None else f"{row['rank_spearman']:.6f}"
        lines.append(
            f"| {row['layout']} | {row['artifact']} | {row['size_mb']} MB | {row['cosine_min']:.6f} "
            f"({row['cosine_metric']}) | {spearman} | {'pass' if row['passed'] else 'FAIL'} | {row['placement']} |"
        )
    if coreml_available():
        lines += [
            "",
            "| compute units | package | " + " | ".join(f"seq {b}" for b in buckets) + " |",
            "|---|---|" + "---|" * len(buckets),
        ]
        for units, per_package in latency.items():
            for name, per_bucket in per_package.items():
                cells = " | ".join(f"{per_bucket[b]:.2f} ms" for b in buckets)
                lines.append(f"| {units} | {name} | {cells} |")
    else:
        lines += ["", f"Latency: {NOT_MEASURABLE}."]
    lines += [
        "",
        f"Model {result['model']}, target {args.target}, buckets {buckets}; CPU {result['cpu']}; "
        f"{result['elapsed_s']} s in all.",
    ]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coreml_ane.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "coreml_ane.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
