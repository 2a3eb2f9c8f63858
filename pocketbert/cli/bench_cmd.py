"""``pocketbert bench``: latency of every artifact and the student against full BERT, with ratio gates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pocketbert.cli.common import int_list, say


class _RichHooks:
    """Progress bar on stderr (rich) over the loading, timing and agreement stages."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet or not self.console.is_terminal,
        )
        self.quiet = quiet
        self.task: Any = None

    def __enter__(self) -> _RichHooks:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stage(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(description, total=total)
        if self.progress.disable:
            say(description, self.quiet)

    def advance(self) -> None:
        self.progress.advance(self.task)
        if self.progress.disable and not self.quiet:  # a log, not a terminal: a line every 10%
            task = self.progress.tasks[-1]
            total = int(task.total or 0)
            done = int(task.completed)
            if total and done in {round(total * i / 10) for i in range(1, 11)}:
                say(f"  {done}/{total} ({task.elapsed or 0:.0f} s)")

    def note(self, message: str) -> None:
        if not self.quiet:
            self.progress.console.print(f"note: {message}", markup=False, highlight=False)


def _run(args: argparse.Namespace) -> int:
    from pocketbert.runtime_bench.bench import BenchConfig, load_bench_manifest, plan_specs, run_bench
    from pocketbert.runtime_bench.report import write_reports
    from pocketbert.runtime_bench.rules import check_names, evaluate, load_rules

    config = BenchConfig(
        out_dir=args.artifacts_dir,
        baseline=args.baseline,
        seqs=args.seq,
        batch=args.batch,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        iterations=args.iterations,
        settle=args.settle,
        quick=args.quick,
    )
    rules = None
    if args.check:
        rules = load_rules(args.check)
        manifest = load_bench_manifest(args.artifacts_dir)
        check_names(rules, [s.name for s in plan_specs(manifest, args.artifacts_dir, args.baseline)])
    with _RichHooks(args.quiet) as hooks:
        report = run_bench(config, hooks)
    paths = write_reports(report, args.report or args.artifacts_dir / "report")
    sys.stdout.write(Path(paths["markdown"]).read_text())
    say("wrote " + ", ".join(str(p) for p in paths.values()), args.quiet)
    failed = [r["name"] for r in report["runners"] if r["status"] == "failed"]
    code = 1 if failed else 0
    if failed:
        say(f"failed runners: {', '.join(failed)}")
    if rules is not None:
        for result in evaluate(rules, report):
            verdict = "PASS" if result.passed else "FAIL"
            seq = f" [seq {result.seq}]" if result.rule.seq is None else ""
            print(f"{verdict}  {result.rule.describe()}{seq}: {result.detail}")
            if not result.passed:
                code = 1
    return code


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="latency of every artifact vs full BERT in one interleaved run; JSON, Markdown, PNG; --check gates",
    )
    parser.add_argument(
        "artifacts_dir", type=Path, metavar="ARTIFACTS_DIR", help="a dir written by 'pocketbert export'"
    )
    parser.add_argument(
        "--baseline",
        default="bert-base-uncased",
        help="full-BERT baseline MODEL: bert-base-uncased (hub or cache), random:bert-base-uncased (offline, "
        "speed only), or a local directory (default bert-base-uncased)",
    )
    parser.add_argument("--seq", type=int_list, default=None, help="sequence lengths (default 16,32,64,128,256)")
    parser.add_argument("--batch", type=int, default=1, help="rows per inference (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="threads of every runtime (default: usable cores)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved timing rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed inferences per length (default 3)")
    parser.add_argument("--iterations", type=int, default=1, help="timed inferences per runner per round (default 1)")
    parser.add_argument(
        "--settle",
        type=int,
        default=1,
        help="untimed inferences at the start of each visit, so every runner is timed warm (default 1; 0 = cold)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: seq 16,32, 3 rounds, 1 warm-up")
    parser.add_argument("--check", type=Path, default=None, metavar="RULES.toml", help="ratio gates; exit 1 on a miss")
    parser.add_argument("--report", type=Path, default=None, help="report dir (default ARTIFACTS_DIR/report)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=_run)
