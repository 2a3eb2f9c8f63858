"""Distil all-MiniLM-L6-v2 (6 layers, the embedded default model) into a 3-layer student on real English text, offline.

Corpus: the fortune cookies of Debian's ``fortunes`` package (BSD licence, ``/usr/share/games/fortunes``:
quotations, jokes, definitions, proverbs; about 13,600 texts once ASCII art and duplicates are dropped). Installed
with ``apt-get install fortunes`` when missing (root), else the script says how.

``--wordnet N`` adds up to N glosses (definition and usage examples of one sense) of Princeton WordNet 3.0
(Debian package ``wordnet-base``, WordNet 3.0 licence: use, copy, modify and distribute with the copyright notice)
to the training split only; dev and test stay fortunes.

The texts are shuffled with a fixed seed and cut into a test split (``--test`` texts, never seen by the run:
the reported numbers), a dev split (``pocketbert distill --eval-data``: picks the best checkpoint) and the
training split. The script runs ``pocketbert distill`` through the CLI, then measures teacher vs the initial
(layer-dropped) student vs the distilled student on the test split with pocketbert's parity metrics: Spearman of
all pairwise embedding cosines (``rank_spearman``) and the worst per-text embedding cosine.

    .venv/bin/python benchmarks/distill_minilm.py [--work /tmp/pocketbert-distill-minilm] [--threads 1]

Prints a Markdown table, the time it took and the CPU; writes ``WORK/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
SKIP = {"art", "ascii-art"}  # drawings, not text
# The benchmark's settings beside the defaults: no dropout (the student imitates a frozen teacher), AdamW 2e-4.
RECIPE = ("--dropout", "0", "--lr", "2e-4", "--epochs", "5", "--eval-every", "200")


def _ensure_package(path: Path, package: str) -> None:
    if path.is_dir():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, stdout=subprocess.DEVNULL)
    else:
        sys.exit(f"needs the Debian package {package}: sudo apt-get install {package}")


def wordnet_glosses(limit: int, min_chars: int = 25, max_chars: int = 400) -> list[str]:
    """Up to ``limit`` WordNet glosses of 25-400 characters, deduplicated, in a seeded random order."""
    _ensure_package(WORDNET, "wordnet-base")
    glosses = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:  # the licence header
                continue
            gloss = re.sub(r"\s+", " ", line.split("|", 1)[1]).strip()
            if min_chars <= len(gloss) <= max_chars:
                glosses.append(gloss)
    glosses = list(dict.fromkeys(glosses))
    random.Random(1).shuffle(glosses)
    return glosses[:limit]


def corpus(min_chars: int = 20, max_chars: int = 600) -> list[str]:
    """The fortunes as one text each (whitespace collapsed), mostly-letter texts of 20-600 characters, deduplicated."""
    _ensure_package(FORTUNES, "fortunes")
    texts = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.is_symlink() or path.name in SKIP:
            continue
        for chunk in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            text = re.sub(r"\s+", " ", chunk.replace("%", "")).strip()
            if min_chars <= len(text) <= max_chars and sum(c.isalpha() for c in text) >= 0.6 * len(text):
                texts.append(text)
    return list(dict.fromkeys(texts))


def embeddings(model: Any, tokenizer: Any, texts: list[str], max_length: int = 128) -> tuple[list, list]:
    """Feeds and outputs as pocketbert.parity.metrics.compare_outputs takes them, in batches of 32 sorted by length."""
    from pocketbert.wrapper import reference_outputs

    order = sorted(texts, key=len)
    feeds, outs = [], []
    for start in range(0, len(order), 32):
        enc = tokenizer(
            order[start : start + 32], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        out = reference_outputs(model, _task(), enc["input_ids"], enc["attention_mask"])
        feeds.append({k: enc[k].numpy() for k in ("input_ids", "attention_mask")})
        outs.append({k: v.detach().numpy() for k, v in out.items()})
    return feeds, outs


def _task() -> Any:
    from pocketbert.tasks import Task

    return Task.FEATURE_EXTRACTION


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/pocketbert-distill-minilm"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--test", type=int, default=500, help="test texts (never trained or selected on)")
    parser.add_argument("--dev", type=int, default=300, help="dev texts (best-checkpoint selection)")
    parser.add_argument("--train", type=int, default=None, help="at most this many training texts (default: all)")
    parser.add_argument("--wordnet", type=int, default=0, help="add up to N WordNet glosses to the training split")
    parser.add_argument("distill_args", nargs="*", help="extra pocketbert distill flags, after --")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from pocketbert.cli import main as cli
    from pocketbert.distill.report import cpu_name
    from pocketbert.distill.student import build_student, resolve_layer_map, teacher_layers
    from pocketbert.loading import load_model
    from pocketbert.parity.metrics import compare_outputs

    began = time.perf_counter()
    texts = corpus()
    random.Random(0).shuffle(texts)
    test, dev, train = texts[: args.test], texts[args.test : args.test + args.dev], texts[args.test + args.dev :]
    train = train[: args.train] if args.train else train
    glosses = wordnet_glosses(args.wordnet) if args.wordnet else []
    train = train + glosses
    random.Random(2).shuffle(train)
    args.work.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("dev", dev), ("test", test)):
        (args.work / f"{name}.txt").write_text("\n".join(part) + "\n", encoding="utf-8")
    student_dir = args.work / "student"
    command = [
        "distill",
        "-o",
        str(student_dir),
        "--data",
        str(args.work / "train.txt"),
        "--eval-data",
        str(args.work / "dev.txt"),
        "--layers",
        str(args.layers),
        "--threads",
        str(args.threads),
        "--force",
        *RECIPE,
        *args.distill_args,
    ]
    print(
        f"corpus: {len(texts)} fortunes (Debian package fortunes, BSD), {len(glosses)} WordNet glosses (wordnet-base, "
        f"WordNet 3.0 licence): {len(train)} train, {len(dev)} dev, {len(test)} test (dev and test: fortunes only)",
        flush=True,
    )
    print("$ pocketbert " + " ".join(command), flush=True)
    started = time.perf_counter()
    rc = cli(command)
    distill_seconds = time.perf_counter() - started
    if rc != 0:
        return rc

    teacher = load_model(None)
    layer_map = resolve_layer_map(teacher_layers(teacher.model), args.layers, None)
    initial = build_student(teacher.model, teacher.task, layer_map, "auto").eval()
    student = load_model(str(student_dir)).model
    feeds, ref = embeddings(teacher.model, teacher.tokenizer, test)
    rows = {}
    for name, model in (("initial (layers " + ",".join(map(str, layer_map)) + ")", initial), ("distilled", student)):
        _, got = embeddings(model, teacher.tokenizer, test)
        metrics = compare_outputs(_task(), feeds, ref, got)
        rows[name] = {"rank_spearman": metrics["rank_spearman"], "cosine_min": metrics["embedding.cosine_min"]}
    summary = json.loads((student_dir / "distill" / "summary.json").read_text())
    total = time.perf_counter() - began
    result = {
        "test_texts": len(test),
        "train_texts": len(train),
        "wordnet_glosses": len(glosses),
        "rows": rows,
        "teacher": summary["teacher"],
        "student": summary["student"],
        "training": summary["training"],
        "distill_seconds": round(distill_seconds, 1),
        "total_seconds": round(total, 1),
        "cpu": cpu_name(),
        "threads": args.threads,
        "command": "pocketbert " + " ".join(command),
    }
    (args.work / "result.json").write_text(json.dumps(result, indent=1))
    t, s = summary["teacher"], summary["student"]
    print()
    print(f"| held-out ({len(test)} test texts) | embedding Spearman vs teacher | worst embedding cosine |")
    print("|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['rank_spearman']:.4f} | {row['cosine_min']:.4f} |")
    print()
    print(
        f"teacher {t['layers']} layers {t['parameters']:,} params {t['macs_seq128'] / 1e9:.2f} G MACs @128; "
        f"student {s['layers']} layers {s['parameters']:,} params {s['macs_seq128'] / 1e9:.2f} G MACs @128"
    )
    print(
        f"distill: {summary['training']['steps']} steps, {summary['training']['seconds']:.0f} s training, "
        f"{distill_seconds:.0f} s for the command; whole benchmark {total:.0f} s on {cpu_name()}, "
        f"{args.threads} torch thread(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
