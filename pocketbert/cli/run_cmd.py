"""``pocketbert run``: the main job (see :mod:`pocketbert.run.job`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pocketbert.cli.common import TOKENIZER_HELP, comma_list, int_list
from pocketbert.exporting.options import add_export_flags, given


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags that were given, named as config keys."""
    names = {
        "model": "model",
        "task": "task",
        "num_labels": "num_labels",
        "seed": "seed",
        "tokenizer": "tokenizer",
        "output": "output",
        "gates": "gates",
        "kernels": "kernels",
        "texts": "texts",
        "force": "force",
    }
    values = {key: getattr(args, flag) for flag, key in names.items() if getattr(args, flag) not in (None, False)}
    for key in ("gates", "texts", "output"):
        if key in values:
            values[key] = str(values[key])
    values.update(given(args))
    bench = {
        key: getattr(args, f"bench_{key}")
        for key in ("baseline", "seq", "threads", "repeats", "warmup")
        if getattr(args, f"bench_{key}") is not None
    }
    if args.no_bench:
        bench["enabled"] = False
    if args.full_bench:
        bench["quick"] = False
    if bench:
        values["bench"] = bench
    return values


def _run(args: argparse.Namespace) -> int:
    from pocketbert.run.config import load_config, to_toml

    config = load_config(args.config, _overrides(args))
    if args.print_config:
        print(to_toml(config), end="")
        return 0
    from pocketbert.run.job import run_job
    from pocketbert.run.stages import StageLog

    log = StageLog(quiet=args.quiet or args.json)
    result = run_job(config, log)
    if args.json:
        json.dump(result.summary(), sys.stdout, indent=2)
        print()
    elif not args.quiet:
        report = result.out_dir / "report"
        log.info(f"report: {report / 'index.html'} (and report.md, parity.json, junit.xml)")
        log.info("parity: " + ("all gates passed" if result.parity_passed else "FAILED — see the report"))
    return 0 if result.parity_passed else 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="the main job: export every format, int8, parity, bench vs BERT, report (exit 1 on a parity miss)"
    )
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL", help="as for export (default: embedded)")
    parser.add_argument("--config", type=Path, default=None, help="pocketbert.toml (flags override it)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="output directory (default out/default)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    parser.add_argument("--task", default=None)
    parser.add_argument("--num-labels", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tokenizer", default=None, help=TOKENIZER_HELP)
    add_export_flags(parser)
    parser.add_argument("--gates", type=Path, default=None, help="parity gate overrides (TOML)")
    parser.add_argument(
        "--kernels",
        type=comma_list,
        default=None,
        metavar="FAMILIES",
        help="CPU kernel families for parity (host, arm64, arm64-i8mm, x86-avx2; default host)",
    )
    parser.add_argument("--texts", type=Path, default=None, help="extra parity texts, one per line")
    parser.add_argument("--force", action="store_true", help="replace an OUT that is not a pocketbert output")
    parser.add_argument("--baseline", dest="bench_baseline", default=None, help="bench baseline MODEL")
    parser.add_argument("--seq", dest="bench_seq", type=int_list, default=None, help="bench sequence lengths")
    parser.add_argument("--threads", dest="bench_threads", type=int, default=None)
    parser.add_argument("--repeats", dest="bench_repeats", type=int, default=None)
    parser.add_argument("--warmup", dest="bench_warmup", type=int, default=None)
    parser.add_argument("--no-bench", action="store_true", help="skip the latency bench")
    parser.add_argument("--full-bench", action="store_true", help="full bench instead of the quick one")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    parser.set_defaults(func=_run)
