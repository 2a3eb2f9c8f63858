"""``run_distill``: check everything, load the teacher, build the student, train, and write the output atomically.

Order: settings, the output directory and the checkpoint, the data files' format (before the teacher loads);
the teacher; the data's fields and labels against the teacher's head, the layer map; then the slow work
(tokenization, training). Any error up to there writes nothing. The student (``save_pretrained`` model and
tokenizer) and its report are built in a staging directory beside ``OUT`` and renamed into place when complete.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pocketbert.distill.config import TRAINING_KEYS, DistillConfig, validate
from pocketbert.distill.train import Checkpoint, StepCallback, TrainResult
from pocketbert.errors import PocketbertError

MARKER = Path("distill") / "summary.json"  # what makes a directory a previous distill output
KIND = "pocketbert-distill"


@dataclass
class DistillResult:
    """A finished distillation.

    Attributes:
        output: the student directory (loadable with ``from_pretrained`` and by ``pocketbert run``).
        summary: the ``distill/summary.json`` contents (settings, sizes, metrics, timings).
        next_command: the ``pocketbert run`` command that exports and checks the student against its teacher.
    """

    output: Path
    summary: dict[str, Any]
    next_command: str


def _say(quiet: bool) -> Any:
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def check_output(output: Path, force: bool, teacher: str | None) -> None:
    """Refuse an ``OUT`` that is a file, the teacher's own directory, or a non-empty directory that is not a
    previous distill output (unless ``force``); one line, nothing written."""
    if output.exists() and not output.is_dir():
        raise PocketbertError(f"output {output} exists and is not a directory; choose another -o")
    if teacher and Path(teacher).expanduser().is_dir() and Path(teacher).expanduser().resolve() == output.resolve():
        raise PocketbertError(f"output {output} is the teacher's directory; choose another -o")
    if output.is_dir() and any(output.iterdir()) and not (output / MARKER).is_file() and not force:
        raise PocketbertError(
            f"output {output} is not empty and not a previous pocketbert distill output; use --force or another -o"
        )


def _device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise PocketbertError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _fingerprint(config: DistillConfig, data_digests: dict[str, str], origin: str) -> dict[str, Any]:
    values = config.to_dict()
    return {
        "kind": KIND,
        "settings": {k: values[k] for k in TRAINING_KEYS},
        "data": data_digests,
        "teacher_origin": origin,
    }


def _check_resume(checkpoint: Checkpoint, config: DistillConfig, output: Path) -> None:
    exists = checkpoint.exists()
    if config.resume and not exists:
        raise PocketbertError(f"--resume: no checkpoint of an interrupted distill of {output} ({checkpoint.directory})")
    if exists and not config.resume and not config.force:
        step = checkpoint.step()
        raise PocketbertError(
            f"an interrupted distill of {output} left a checkpoint at step {step} ({checkpoint.directory}): "
            "pass --resume to continue it or --force to start over"
        )


def _check_same_run(checkpoint: Checkpoint, fingerprint: dict[str, Any]) -> None:
    saved = checkpoint.settings()
    for section in ("settings", "data", "teacher_origin"):
        old, new = saved.get(section), fingerprint[section]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            key = next(k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
            what = f"{key}: {old.get(key)!r} then, {new.get(key)!r} now"
        else:
            what = f"{section}: {old!r} then, {new!r} now"
        raise PocketbertError(
            f"--resume: the checkpoint in {checkpoint.directory} was made with other settings ({what}); "
            "rerun with the same ones or use --force to start over"
        )


def _baseline_source(lm: Any) -> str:
    from pocketbert.loading import default_model_dir

    if not lm.source:
        return str(default_model_dir())
    local = Path(lm.source).expanduser()
    return str(local.resolve()) if local.is_dir() else lm.source


def run_distill(
    config: DistillConfig,
    *,
    quiet: bool = False,
    on_step: StepCallback | None = None,
    checkpoint: Path | None = None,
    shown_as: Path | None = None,
) -> DistillResult:
    """Distil ``config.teacher`` into a smaller student and write it to ``config.output``.

    Args:
        config: the settings (see :class:`~pocketbert.distill.config.DistillConfig`).
        quiet: no progress bar or progress lines on stderr.
        on_step: called with the step number after each optimizer step (tests interrupt through it).
        checkpoint: the resumable checkpoint's directory (default: ``.<output>.distill-checkpoint`` beside it).
        shown_as: the path the report and the next command name for the student, when the caller moves it there
            afterwards (default: ``config.output``).

    Returns:
        the written student directory, its summary and the command to continue with.

    Raises:
        PocketbertError: bad settings, output, data, teacher, labels or layer map (one line, nothing written).
        KeyboardInterrupt: the run was interrupted; the checkpoint beside the output allows ``--resume``.
    """
    from pocketbert.distill import data as data_mod
    from pocketbert.fsutil import stale_aside_dirs
    from pocketbert.run.lock import OutputLock

    say = _say(quiet)
    validate(config)
    if not config.data:
        raise PocketbertError("no training data: pass --data FILE (.txt one text per line, .jsonl or .csv)")
    if not config.output:
        raise PocketbertError("no output directory: pass -o STUDENT_DIR")
    output = Path(config.output).expanduser().absolute()
    check_output(output, config.force, config.teacher)
    saved = Checkpoint(Path(checkpoint)) if checkpoint is not None else Checkpoint.beside(output)
    _check_resume(saved, config, output)
    device = _device(config.device)
    data_path = Path(config.data).expanduser()
    _, rows = data_mod.read_rows(data_path)
    eval_rows = None
    digests = {"data": data_mod.file_digest(data_path)}
    if config.eval_data:
        eval_path = Path(config.eval_data).expanduser()
        _, eval_rows = data_mod.read_rows(eval_path, "eval data file")
        digests["eval_data"] = data_mod.file_digest(eval_path)

    made = [p for p in [output.parent, *output.parent.parents] if not p.exists()]  # the lock needs the parent
    try:
        with OutputLock(output):
            for stale in stale_aside_dirs(output):
                shutil.rmtree(stale, ignore_errors=True)
            return _run_locked(
                config, output, saved, device, rows, eval_rows, digests, quiet, say, on_step, shown_as or output
            )
    finally:
        for directory in made:  # parents created for the lock go again when nothing else was written there
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


def _run_locked(
    config: DistillConfig,
    output: Path,
    checkpoint: Checkpoint,
    device: str,
    rows: list,
    eval_rows: list | None,
    digests: dict[str, str],
    quiet: bool,
    say: Any,
    on_step: StepCallback | None,
    shown_as: Path,
) -> DistillResult:
    import time

    import torch

    from pocketbert import interrupts
    from pocketbert.distill import data as data_mod
    from pocketbert.distill.evaluate import prepare_held_out
    from pocketbert.distill.freshness import inputs, student_files
    from pocketbert.distill.losses import active_parts
    from pocketbert.distill.report import write_report
    from pocketbert.distill.student import build_student, resolve_layer_map, student_architecture, teacher_layers
    from pocketbert.distill.train import plan_steps, train
    from pocketbert.fsutil import apply_umask, aside_dir, swap_in
    from pocketbert.loading import load_model
    from pocketbert.tasks import Task

    began = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    lm = load_model(config.teacher, config.task, seed=config.seed, tokenizer=config.tokenizer)
    task: Task = lm.task
    say(f"teacher: {lm.origin}; task {task.value}")
    if config.max_length > lm.max_positions:
        raise PocketbertError(
            f"--max-length {config.max_length} is more than the teacher's {lm.max_positions} positions"
        )
    fields = {
        "text_field": config.text_field,
        "label_field": config.label_field,
        "question_field": config.question_field,
        "context_field": config.context_field,
    }
    examples = data_mod.examples_from_rows(rows, task, lm.labels, where=f"data file {config.data}", **fields)
    held = None
    if eval_rows is not None:
        held = data_mod.examples_from_rows(
            eval_rows, task, lm.labels, where=f"eval data file {config.eval_data}", **fields
        )
    depth = teacher_layers(lm.model)
    layer_map = resolve_layer_map(depth, config.layers, config.layer_map)
    arch = student_architecture(lm.model, config.architecture)
    train_examples, eval_examples = data_mod.split_examples(
        examples, held, config.eval_fraction, config.max_eval, config.seed
    )
    labelled = any(e.label is not None for e in train_examples)
    parts = active_parts(task, config, labelled)
    if not parts:
        raise PocketbertError(f"every loss weight that applies to {task.value} is 0: set one of alpha_* above 0")
    fingerprint = _fingerprint(config, digests, lm.origin)
    if config.resume:
        _check_same_run(checkpoint, fingerprint)
    # Everything is checked: the slow work starts.
    interrupts.check()
    tokenizer = lm.tokenizer
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    train_set = data_mod.encode(train_examples, tokenizer, task, config.max_length)
    eval_set = data_mod.encode(eval_examples, tokenizer, task, config.max_length)
    torch.manual_seed(config.seed)
    student = build_student(lm.model, task, layer_map, arch, config.dropout)
    teacher = lm.model.to(device).eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    student = student.to(device)
    per_epoch, total = plan_steps(config, len(train_set))
    say(
        f"student: {arch}, {len(layer_map)} of {depth} layers (teacher layers {','.join(map(str, layer_map))}); "
        f"{len(train_set)} training and {len(eval_set)} held-out examples; {total} steps of {config.batch_size} "
        f"on {device}; losses {', '.join(f'{k} x{v:g}' for k, v in parts.items())}"
    )
    held_out = prepare_held_out(teacher, eval_set, task, config, pad_id, device)
    if not config.resume:
        checkpoint.start(fingerprint)
    result: TrainResult = train(
        teacher,
        student,
        task,
        train_set,
        held_out,
        config,
        layer_map,
        parts,
        checkpoint,
        pad_id=pad_id,
        device=device,
        resume=config.resume,
        quiet=quiet,
        on_step=on_step,
        say=say,
    )
    stage = aside_dir(output, "staging")
    try:
        student = student.to("cpu").eval()
        teacher = teacher.to("cpu")
        student.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        for path in stage.rglob("*"):
            apply_umask(path)
        command = f"pocketbert run {shown_as} --baseline {_baseline_source(lm)} -o out/{shown_as.name}"
        summary = write_report(
            stage,
            output=shown_as,
            config=config,
            lm=lm,
            student=student,
            teacher=teacher,
            task=task,
            architecture=arch,
            layer_map=layer_map,
            result=result,
            counts={
                "train_examples": len(train_set),
                "eval_examples": len(eval_set),
                "labelled_train_examples": sum(e.label is not None for e in train_examples),
                "train_tokens_per_epoch": sum(len(e.input_ids) for e in train_set),
                "steps_per_epoch": per_epoch,
            },
            teacher_accuracy=held_out.teacher_accuracy,
            command=command,
            device=device,
            wall_seconds=time.perf_counter() - began,
            provenance={"inputs": inputs(config, digests), "files_sha256": student_files(stage)},
        )
        swap_in(stage, output)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    checkpoint.remove()
    return DistillResult(output, summary, command)
