"""``pocketbert distill``: a smaller student from a teacher, trained to agree with it, written atomically."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pocketbert.cli.common import TOKENIZER_HELP, int_list, say
from pocketbert.errors import PocketbertError

# flag dest -> DistillConfig key (flags left at None keep the [distill] table's or the default value)
_FLAGS: tuple[str, ...] = (
    "teacher", "output", "data", "eval_data", "task", "tokenizer", "layers", "layer_map", "architecture",
    "text_field", "label_field", "question_field", "context_field", "eval_fraction", "max_eval", "max_length",
    "epochs", "max_steps", "batch_size", "learning_rate", "weight_decay", "warmup", "max_grad_norm", "dropout",
    "temperature", "alpha_kl", "alpha_labels", "alpha_cos", "hidden_layers", "alpha_embedding", "embedding_loss",
    "alpha_similarity", "eval_every", "seed", "device", "threads", "teacher_cache_mb",
)  # fmt: skip


def resolve_config(args: argparse.Namespace) -> Any:
    """Defaults, then the ``[distill]`` table of ``--config``, then the flags that were given."""
    from pocketbert.distill.config import DistillConfig, apply_values, parse_distill_section, validate
    from pocketbert.tomlfile import read_toml

    config = DistillConfig()
    if args.config is not None:
        table = read_toml(args.config, "config file")
        if "distill" not in table:
            raise PocketbertError(f"config file {args.config} has no [distill] table")
        config = parse_distill_section(table["distill"])
    values: dict[str, Any] = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    for key in ("output", "data", "eval_data"):
        if key in values:
            values[key] = str(values[key])
    if args.resume:
        values["resume"] = True
    if args.force:
        values["force"] = True
    if args.no_group_by_length:
        values["group_by_length"] = False
    apply_values(config, values, where="option ")
    validate(config)
    return config


def _run(args: argparse.Namespace) -> int:
    from pocketbert.distill.job import run_distill

    config = resolve_config(args)
    result = run_distill(config, quiet=args.quiet)
    summary = result.summary
    metrics = summary["metrics"]
    from pocketbert.distill.evaluate import PRIMARY_METRIC, WORST_COSINE
    from pocketbert.tasks import Task

    task = Task(summary["task"])
    primary, worst = PRIMARY_METRIC[task], WORST_COSINE[task]
    init, best = metrics["initial"], metrics["best"]
    say(
        f"student: {result.output} ({summary['student']['layers']} layers, {summary['student']['parameters']:,} "
        f"parameters, {summary['ratios']['macs']:.2f}x the teacher's multiply-adds)\n"
        f"held-out {primary}: {init.get(primary, float('nan')):.4f} initial -> {best.get(primary, float('nan')):.4f}; "
        f"worst cosine {init.get(worst, float('nan')):.4f} -> {best.get(worst, float('nan')):.4f}\n"
        f"report: {result.output / 'distill' / 'report.md'}\n"
        f"next: {result.next_command}",
        args.quiet,
    )
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "distill",
        help="make a smaller student from a teacher (fewer layers) and distil it on your texts",
        description="Initialise a student with a subset of the teacher's layers (its embeddings and head copied) and "
        "train it to reproduce the teacher's outputs on your texts (labels optional); writes a save_pretrained "
        "directory with the tokenizer and a report in STUDENT_DIR/distill/.",
    )
    parser.add_argument(
        "teacher",
        nargs="?",
        default=None,
        metavar="TEACHER",
        help="hub id or local save_pretrained dir; omitted: the embedded all-MiniLM-L6-v2",
    )
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="STUDENT_DIR", help="student directory")
    parser.add_argument("--config", type=Path, default=None, help="a TOML file whose [distill] table sets defaults")
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, default=None, help="training data: .txt (one text per line), .jsonl, .csv")
    data.add_argument("--eval-data", type=Path, default=None, help="held-out data (default: a split of --data)")
    data.add_argument("--eval-fraction", type=float, default=None, help="share of --data held out (default 0.1)")
    data.add_argument("--max-eval", type=int, default=None, help="at most this many held-out examples (512)")
    data.add_argument("--text-field", default=None, help="JSONL/CSV text field (default text)")
    data.add_argument("--label-field", default=None, help="label field (default: label, where present)")
    data.add_argument("--question-field", default=None, help="QA question field (default question)")
    data.add_argument("--context-field", default=None, help="QA context field (default context)")
    data.add_argument("--max-length", type=int, default=None, help="truncate texts to this many tokens (128)")
    shape = parser.add_argument_group("student")
    shape.add_argument("--layers", type=int, default=None, help="student layers, spread evenly (default: half)")
    shape.add_argument("--layer-map", type=int_list, default=None, help="teacher layers to keep, e.g. 0,2,5")
    shape.add_argument("--architecture", default=None, help="auto (the teacher's), distilbert or bert (default auto)")
    shape.add_argument("--task", default=None, help="the teacher's head (default: from its architectures)")
    shape.add_argument("--tokenizer", default=None, help=TOKENIZER_HELP)
    opt = parser.add_argument_group("training")
    opt.add_argument("--epochs", type=float, default=None, help="passes over the training split (3)")
    opt.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    opt.add_argument("--batch-size", type=int, default=None, help="examples per step (32)")
    opt.add_argument("--lr", dest="learning_rate", type=float, default=None, help="AdamW peak learning rate (1e-4)")
    opt.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (0.01)")
    opt.add_argument("--warmup", type=float, default=None, help="warm-up fraction of the steps (0.05)")
    opt.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping norm (5.0)")
    opt.add_argument("--dropout", type=float, default=None, help="student dropout (default: the teacher's)")
    opt.add_argument("--no-group-by-length", action="store_true", help="batch texts in plain random order")
    opt.add_argument(
        "--teacher-cache-mb", type=int, default=None, help="keep teacher outputs in memory up to N MB (2048; 0: off)"
    )
    opt.add_argument("--eval-every", type=int, default=None, help="evaluate and checkpoint every N steps (200)")
    opt.add_argument("--seed", type=int, default=None, help="seed of the split, order and dropout (0)")
    opt.add_argument("--device", default=None, help="auto (CUDA when present), cpu or cuda")
    opt.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    loss = parser.add_argument_group("losses (defaults after DistilBERT, Sanh et al. 2019)")
    loss.add_argument("--temperature", type=float, default=None, help="softmax temperature of the KL (2.0)")
    loss.add_argument("--alpha-kl", type=float, default=None, help="KL on logits (5.0; DistilBERT's alpha_ce)")
    loss.add_argument("--alpha-labels", type=float, default=None, help="cross-entropy on labels (2.0)")
    loss.add_argument("--alpha-cos", type=float, default=None, help="cosine on hidden states (1.0)")
    loss.add_argument("--hidden-layers", default=None, help="hidden states aligned: last, mapped or none (last)")
    loss.add_argument("--alpha-embedding", type=float, default=None, help="pooled-embedding loss (1.0)")
    loss.add_argument("--embedding-loss", default=None, help="cosine or mse (cosine)")
    loss.add_argument("--alpha-similarity", type=float, default=None, help="in-batch similarity-matrix MSE (0)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted distill of STUDENT_DIR")
    parser.add_argument("--force", action="store_true", help="replace a non-distill STUDENT_DIR / drop a checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.set_defaults(func=_run)
