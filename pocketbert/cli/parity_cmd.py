"""``pocketbert parity``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketbert.cli.common import comma_list, require_positive, say
from pocketbert.kernels.families import FAMILIES


def _run(args: argparse.Namespace) -> int:
    from pocketbert.parity.check import artifact_names, check_parity
    from pocketbert.parity.merge import merge_previous
    from pocketbert.parity.report import render, write_json, write_junit

    require_positive(args.threads, "--threads")
    report = check_parity(
        args.output_dir,
        reference=args.reference,
        texts_file=args.texts,
        gates_file=args.gates,
        only=args.artifact,
        threads=args.threads,
        kernels=args.kernels,
    )
    report_dir = args.report or args.output_dir / "report"
    saved = (
        merge_previous(report, report_dir / "parity.json", artifact_names(args.output_dir)) if args.artifact else report
    )
    write_json(saved, report_dir / "parity.json")
    write_junit(saved, report_dir / "junit.xml")
    print(render(report))
    say(f"wrote {report_dir / 'parity.json'} and {report_dir / 'junit.xml'}")
    return 0 if report.passed else 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("parity", help="check every artifact of an output dir against PyTorch; exit 1 on a miss")
    parser.add_argument("output_dir", type=Path, metavar="OUT", help="a directory written by 'pocketbert export'")
    parser.add_argument("--reference", default=None, help="reference MODEL instead of the manifest's source")
    parser.add_argument("--texts", type=Path, default=None, help="extra texts, one per line")
    parser.add_argument("--gates", type=Path, default=None, help="TOML file of gate overrides")
    parser.add_argument("--artifact", type=comma_list, default=None, help="only these artifacts (e.g. onnx-int8)")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads")
    parser.add_argument(
        "--kernels",
        type=comma_list,
        default=None,
        metavar="FAMILIES",
        help=f"CPU kernel families to run ONNX/TFLite artifacts on: {', '.join(FAMILIES)} (default host; "
        "emulated ones need 'pocketbert kernels setup')",
    )
    parser.add_argument("--report", type=Path, default=None, help="report dir (default OUT/report)")
    parser.set_defaults(func=_run)
