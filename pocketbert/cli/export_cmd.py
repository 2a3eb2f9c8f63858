"""``pocketbert export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketbert.cli.common import add_model_args, say
from pocketbert.exporting.options import add_export_flags, given, settings_from
from pocketbert.formats import all_formats

DEFAULT_FORMATS = ["onnx"]
DEFAULT_PRECISIONS = ["fp32", "int8"]


def _run(args: argparse.Namespace) -> int:
    from pocketbert.exporting.pipeline import export_model, validate_request
    from pocketbert.loading import load_model
    from pocketbert.outdir import check_target

    settings = settings_from(given(args))
    formats, precisions = args.formats or DEFAULT_FORMATS, args.precisions or DEFAULT_PRECISIONS
    validate_request(formats, precisions, settings)
    check_target(args.output, args.force)
    loaded = load_model(args.model, args.task, num_labels=args.num_labels, seed=args.seed, tokenizer=args.tokenizer)
    say(f"model: {loaded.origin}; task {loaded.task.value}")
    manifest = export_model(
        loaded,
        formats,
        precisions,
        args.output,
        settings,
        seed=args.seed,
        force=args.force,
        progress=say,
    )
    for artifact in manifest["artifacts"]:
        size = artifact["size_bytes"] / 1e6
        say(f"  {artifact['name']:<18} {artifact['scheme']:<24} {size:8.1f} MB  {args.output / artifact['path']}")
    say(f"wrote {args.output / 'manifest.json'}; check it with: pocketbert parity {args.output}")
    return 0


def titles() -> list[str]:
    """Every format's name for people, in registry order."""
    return [fmt.title for fmt in all_formats()]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help=f"export a model to {' / '.join(titles())} in fp32, fp16, int8")
    add_model_args(parser)
    add_export_flags(parser)
    parser.add_argument("--force", action="store_true", help="replace an output dir that holds something else")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    parser.set_defaults(func=_run)
