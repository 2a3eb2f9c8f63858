"""``pocketbert export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketbert.cli.common import add_model_args, comma_list, int_list, say
from pocketbert.export.artifact import DEFAULT_BUCKETS, ExportSettings
from pocketbert.quantize.weight_recipes import DEFAULT_WEIGHT_RECIPE, WEIGHT_RECIPES


def add_export_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``export`` and ``run``."""
    parser.add_argument("--format", type=comma_list, default=None, help="onnx,tflite,coreml (comma list)")
    parser.add_argument("--precision", type=comma_list, default=None, help="fp32,fp16,int8 (comma list)")
    parser.add_argument("--int8-scheme", choices=("dynamic", "static"), default="dynamic", help="for precision int8")
    parser.add_argument("--calibration", type=Path, default=None, help="texts for static int8, one per line")
    parser.add_argument(
        "--buckets",
        type=int_list,
        default=None,
        help=f"static sequence lengths for TFLite/Core ML (default {','.join(map(str, DEFAULT_BUCKETS))}); "
        "the largest is the max length",
    )
    parser.add_argument(
        "--budget",
        default=None,
        help="int8 parity budget, e.g. 'cosine>=0.995,spearman>=0.995': the most sensitive ops stay float "
        "until it holds",
    )
    parser.add_argument(
        "--onnx-fusion",
        action="store_true",
        help="ONNX int8: apply ORT's transformer fusions first (QAttention); measure before you keep it",
    )
    parser.add_argument(
        "--onnx-int8-weights",
        choices=sorted(WEIGHT_RECIPES),
        default=DEFAULT_WEIGHT_RECIPE,
        help="ONNX int8 weight storage: u8 (default; exact on every CPU), s8 (fastest on x86 VNNI, saturates on "
        "x86 without VNNI), s7 (reduce_range); see docs/kernels.md",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    parser.add_argument("--coreml-target", default="iOS16", help="Core ML minimum deployment target (iOS16..iOS18)")
    parser.add_argument("--force", action="store_true", help="replace an output dir that holds something else")


def settings_from_args(args: argparse.Namespace) -> ExportSettings:
    buckets = list(args.buckets or DEFAULT_BUCKETS)
    return ExportSettings(
        max_length=buckets[-1] if buckets else 0,
        sequence_buckets=buckets,
        int8_scheme=args.int8_scheme,
        calibration_file=str(args.calibration) if args.calibration else None,
        opset=args.opset,
        coreml_target=args.coreml_target,
        int8_budget=args.budget,
        onnx_fusion=args.onnx_fusion,
        onnx_int8_weights=args.onnx_int8_weights,
    )


def _run(args: argparse.Namespace) -> int:
    from pocketbert.errors import PocketbertError
    from pocketbert.export.pipeline import export_model, validate_request
    from pocketbert.loading import load_model
    from pocketbert.outdir import check_target

    if args.opset < 17:
        raise PocketbertError(f"ONNX opset must be at least 17 (LayerNormalization), got {args.opset}")
    settings = settings_from_args(args)
    formats, precisions = args.format or ["onnx"], args.precision or ["fp32", "int8"]
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


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a model to ONNX / TFLite / Core ML in fp32, fp16, int8")
    add_model_args(parser)
    add_export_args(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    parser.set_defaults(func=_run)
