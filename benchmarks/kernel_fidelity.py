"""Worst embedding cosine of every artifact of OUT on every kernel family, on single texts and on padded batches.

    .venv/bin/python benchmarks/kernel_fidelity.py OUT [--kernels host,arm64,x86-avx2] [--only onnx-int8,...]
        [--json FILE]

The parity texts run alone (no padding: what an app feeds one text at a time) and in padded batches of four, as
``pocketbert parity`` feeds them; the PyTorch reference runs on the host, each artifact on each family
(:mod:`pocketbert.kernels`). Prints a Markdown table and the seconds each (artifact, family) took; emulated
seconds are wall time under QEMU, not a latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pocketbert.core.artifact import manifest_artifacts, read_manifest
from pocketbert.parity.check import artifact_runs, check_kernels, family_runner, load_reference
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds
from pocketbert.parity.metrics import compare_outputs
from pocketbert.parity.torch_runner import TorchRunner
from pocketbert.tasks import Task


def measure(out: Path, kernels: list[str], only: list[str] | None) -> list[dict]:
    """One row per (artifact, family): worst cosine of every output on single texts and on all feeds."""
    families = check_kernels(kernels)
    manifest = read_manifest(out)
    artifacts = [a for a in manifest_artifacts(manifest) if not only or a.name in only]
    loaded = load_reference(manifest)
    texts = list(BUILTIN_TEXTS)
    feeds = build_feeds(loaded.tokenizer, texts, int(manifest["max_length"]))
    singles = len(texts)  # build_feeds puts every text alone first, then the padded batches
    task = Task(manifest["model"]["task"])
    with TorchRunner(loaded) as reference:
        expected = [reference.infer(feed) for feed in feeds]
    rows = []
    for artifact, family in artifact_runs(artifacts, families):
        start = time.perf_counter()
        with family_runner(artifact, out, family, threads=2) as runner:
            got = [runner.infer(feed) for feed in feeds]
            facts = runner.kernel_facts()
        single = compare_outputs(task, feeds[:singles], expected[:singles], got[:singles])
        every = compare_outputs(task, feeds, expected, got)
        rows.append(
            {
                "artifact": artifact.name,
                "family": facts.get("family", family),
                "int8_kernels": facts.get("int8_kernels"),
                "single": {k: v for k, v in single.items() if k.endswith("cosine_min")},
                "all": {k: v for k, v in every.items() if k.endswith("cosine_min") or "spearman" in k},
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"{artifact.name} on {family}: {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    return rows


def _headline(metrics: dict[str, float]) -> float:
    """The embedding's worst cosine when there is one (feature extraction), else the worst of every output."""
    cosines = {k: v for k, v in metrics.items() if k.endswith("cosine_min")}
    return cosines.get("embedding.cosine_min", min(cosines.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--kernels", default="host,arm64,x86-avx2")
    parser.add_argument("--only", default=None, help="artifact names, comma-separated")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = measure(args.out, args.kernels.split(","), args.only.split(",") if args.only else None)
    print("| artifact | family | int8 kernels | worst (embedding) cosine, single texts | all feeds | seconds |")
    print("|---|---|---|---|---|---:|")
    for row in rows:
        single, every = _headline(row["single"]), _headline(row["all"])
        print(
            f"| {row['artifact']} | {row['family']} | {row['int8_kernels']} | {single:.4f} | {every:.4f} "
            f"| {row['seconds']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
