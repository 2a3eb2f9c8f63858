"""``pocketbert diagnose``: where in the network an artifact's error starts and grows."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pocketbert.cli.common import say
from pocketbert.errors import PocketbertError


def _run(args: argparse.Namespace) -> int:
    from pocketbert.core.artifact import manifest_artifacts, read_manifest, write_json_atomic
    from pocketbert.core.integrity import verify_output
    from pocketbert.exporting.manifest import read_tokenizer
    from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds, read_text_file
    from pocketbert.parity.localize import culprit, localize, plot, probe_runner, rows_to_dicts
    from pocketbert.tasks import Task

    manifest = read_manifest(args.output_dir)
    artifacts = {a.name: a for a in manifest_artifacts(manifest)}
    have = ", ".join(artifacts)
    name = args.artifact or next((n for n in artifacts if "int8" in n), None)
    if name not in artifacts:
        raise PocketbertError(f"no artifact named {name} in {args.output_dir}; have: {have}")
    candidate = artifacts[name]
    against = args.against or next(
        (f"{candidate.format}-{p}" for p in ("fp32", "fp16") if f"{candidate.format}-{p}" in artifacts), None
    )
    if against not in artifacts:
        raise PocketbertError(
            f"no float artifact {against or candidate.format + '-fp32'} to diagnose {name} against; have: {have}; "
            "export one or pass --against"
        )
    reference = artifacts[against]
    verify_output(args.output_dir, manifest, [candidate, reference])
    task = Task(manifest["model"]["task"])
    tokenizer = read_tokenizer(args.output_dir, "diagnose tokenizes with it")
    texts = list(BUILTIN_TEXTS) + (read_text_file(args.texts, "texts file") if args.texts else [])
    feeds = build_feeds(tokenizer, texts, int(manifest["max_length"]))
    with tempfile.TemporaryDirectory(prefix="pocketbert-diagnose-") as scratch:
        rows = localize(
            probe_runner(reference, args.output_dir, Path(scratch), task),
            probe_runner(candidate, args.output_dir, Path(scratch), task),
            feeds,
        )
    worst = culprit(rows)
    report = args.output_dir / "report"
    write_json_atomic(
        report / f"diagnose-{candidate.name}.json",
        {"artifact": candidate.name, "against": reference.name, "culprit": worst.block, "blocks": rows_to_dicts(rows)},
    )
    png = plot(
        rows, f"{candidate.name} vs {reference.name}: error per block", report / f"diagnose-{candidate.name}.png"
    )
    print(f"{'block':<22} {'1 - cosine':>12} {'rel max err':>12} {'added':>12}")
    for row in rows:
        mark = "  <- grows most" if row is worst else ""
        print(f"{row.block:<22} {1 - row.cosine_min:12.3e} {row.rel_max_abs:12.3e} {row.growth:12.3e}{mark}")
    say(f"culprit: {worst.block}; wrote {png} and {png.with_suffix('.json')}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("diagnose", help="localise an artifact's error layer by layer against its float twin")
    parser.add_argument("output_dir", type=Path, metavar="OUT")
    parser.add_argument(
        "--artifact", default=None, help="the artifact to diagnose, e.g. tflite-int8 (default: the first int8 one)"
    )
    parser.add_argument(
        "--against",
        default=None,
        help="its float reference, any format (default: the same format's fp32, else fp16)",
    )
    parser.add_argument("--texts", type=Path, default=None, help="extra texts, one per line")
    parser.set_defaults(func=_run)
