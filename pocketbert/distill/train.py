"""The training loop: AdamW, linear warm-up and decay, gradient clipping, periodic held-out evaluation, the best
student kept, and a checkpoint to resume from.

Reproducible: the batch order is a function of ``(seed, epoch)`` (:func:`pocketbert.distill.data.epoch_batches`)
and the RNG states (torch, CUDA, Python, NumPy) are saved with the model, optimizer and scheduler, so a run
interrupted and resumed with ``--resume`` continues with the same batches and dropout masks as one that was not.
A checkpoint is written after every evaluation and when the run is interrupted (SIGINT/SIGTERM or an exception
between steps); an optimizer update is never split by a signal.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketbert import interrupts
from pocketbert.distill.config import DistillConfig
from pocketbert.distill.data import Encoded, collate, epoch_batches
from pocketbert.distill.evaluate import HeldOut, better, evaluate, forward
from pocketbert.distill.losses import distill_loss, needs_hidden_states
from pocketbert.distill.teacher_cache import TeacherCache, cache_bytes
from pocketbert.errors import PocketbertError
from pocketbert.tasks import Task

STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
SETTINGS_FILE = "settings.json"

StepCallback = Callable[[int], None]


@dataclass
class TrainResult:
    """What the loop did: steps run, every logged step and evaluation, and the best evaluation.

    Attributes:
        steps: optimizer steps completed (of ``total_steps``).
        history: one dict per step: ``step``, ``loss``, ``lr`` and each loss part.
        evals: one dict per evaluation: ``step`` and the metrics of :func:`~pocketbert.distill.evaluate.evaluate`.
        best: the best evaluation (``step`` included); its weights are in the student when the loop returns.
        seconds: training wall time in seconds, summed over resumed runs (evaluations included).
        train_tokens: real (unpadded) tokens the student was trained on, summed over resumed runs.
        resumed_from: the step the run resumed from (``None``: started fresh).
    """

    steps: int
    total_steps: int
    history: list[dict[str, float]]
    evals: list[dict[str, float]]
    best: dict[str, float]
    seconds: float
    train_tokens: int
    resumed_from: int | None = None


def plan_steps(config: DistillConfig, examples: int) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` for ``examples`` training examples."""
    per_epoch = math.ceil(examples / config.batch_size)
    total = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
    return per_epoch, total


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Checkpoint:
    """The resumable state of one distillation, in a directory beside the output (``.<OUT>.distill-checkpoint``).

    ``settings.json`` holds the settings and data digests the run was started with; ``state.pt`` the student,
    optimizer, scheduler, RNG states, step and curves; ``best.pt`` the best student's weights so far.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def beside(output: Path) -> Checkpoint:
        """The checkpoint of the distillation writing ``output``."""
        output = Path(output).absolute()
        return Checkpoint(output.parent / f".{output.name}.distill-checkpoint")

    def exists(self) -> bool:
        return (self.directory / STATE_FILE).is_file()

    def settings(self) -> dict[str, Any]:
        path = self.directory / SETTINGS_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def step(self) -> int | None:
        """The step saved in the checkpoint, read from ``settings.json`` (cheap), or ``None``."""
        value = self.settings().get("step")
        return int(value) if isinstance(value, int) else None

    def start(self, settings: dict[str, Any]) -> None:
        """A fresh checkpoint directory holding ``settings`` (an old one is removed)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self._write_settings(settings)

    def _write_settings(self, settings: dict[str, Any]) -> None:
        tmp = self.directory / f".{SETTINGS_FILE}.tmp"
        tmp.write_text(json.dumps(settings, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.directory / SETTINGS_FILE)

    def save(self, state: dict[str, Any], best_weights: dict[str, torch.Tensor] | None) -> None:
        """Write ``state`` (and the best weights when they changed) atomically, then record the step."""
        with interrupts.deferred():
            if best_weights is not None:
                _atomic_save(best_weights, self.directory / BEST_FILE)
            _atomic_save(state, self.directory / STATE_FILE)
            settings = self.settings()
            settings["step"] = int(state["step"])
            self._write_settings(settings)

    def load(self, device: str) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
        """The saved state and best weights (tensors on ``device``).

        Raises:
            PocketbertError: the checkpoint is unreadable.
        """
        try:
            state = torch.load(self.directory / STATE_FILE, map_location=device, weights_only=False)
            best_path = self.directory / BEST_FILE
            best = torch.load(best_path, map_location=device, weights_only=True) if best_path.is_file() else None
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
            raise PocketbertError(
                f"checkpoint {self.directory} is unreadable ({type(exc).__name__}); use --force to start over"
            ) from None
        return state, best

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _optimizer(student: Any, config: DistillConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in student.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def _scheduler(optimizer: torch.optim.Optimizer, config: DistillConfig, total: int) -> Any:
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(config.warmup * total), total)


def _progress(total: int, initial: int, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        desc="distill",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if tty else 30.0,
        leave=True,
    )


def _teacher_cache(
    teacher: Any,
    train_set: list[Encoded],
    task: Task,
    config: DistillConfig,
    layer_map: list[int],
    pad_id: int,
    device: str,
    quiet: bool,
    per_epoch: int,
    total: int,
    say: Callable[[str], None],
) -> TeacherCache | None:
    """The teacher outputs cache when training spans more than one epoch and it fits ``teacher_cache_mb``."""
    if config.teacher_cache_mb == 0 or total <= per_epoch:
        return None
    cfg = teacher.config
    hidden_size = int(getattr(cfg, "dim", None) or cfg.hidden_size)
    tokens = sum(len(e.input_ids) for e in train_set)
    size = cache_bytes(task, config, layer_map, hidden_size, int(cfg.num_labels), tokens)
    if size > config.teacher_cache_mb * 1e6:
        say(f"distill: teacher outputs ({size / 1e6:.0f} MB) exceed teacher_cache_mb; computing them every step")
        return None
    return TeacherCache.build(teacher, train_set, task, config, layer_map, pad_id, device, quiet)


def _clone_weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    teacher: Any,
    student: Any,
    task: Task,
    train_set: list[Encoded],
    held_out: HeldOut,
    config: DistillConfig,
    layer_map: list[int],
    parts: dict[str, float],
    checkpoint: Checkpoint,
    *,
    pad_id: int,
    device: str,
    resume: bool = False,
    quiet: bool = False,
    on_step: StepCallback | None = None,
    say: Callable[[str], None] | None = None,
) -> TrainResult:
    """Distil ``teacher`` into ``student`` on ``train_set`` and return with the best student's weights loaded.

    Args:
        teacher / student: Hugging Face models on ``device``; the teacher stays in eval mode and gets no gradients.
        train_set: the tokenized training split.
        held_out: :func:`~pocketbert.distill.evaluate.prepare_held_out` of the held-out split.
        parts: the weighted loss parts (:func:`~pocketbert.distill.losses.active_parts`).
        checkpoint: where the resumable state goes; its ``settings.json`` was written by the caller
            (:meth:`Checkpoint.start`) unless ``resume``.
        resume: continue from ``checkpoint`` instead of the initial student.
        on_step: called with the step number after each optimizer step (tests interrupt through it).
        say: prints one progress line (not called when ``quiet``).

    Raises:
        KeyboardInterrupt: re-raised after the checkpoint was saved.
    """
    say = say or (lambda message: None)
    per_epoch, total = plan_steps(config, len(train_set))
    lengths = [len(e.input_ids) for e in train_set]
    hidden = needs_hidden_states(task, config)
    optimizer = _optimizer(student, config)
    scheduler = _scheduler(optimizer, config, total)
    history: list[dict[str, float]] = []
    evals: list[dict[str, float]] = []
    best: dict[str, float] | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    step, seconds, tokens = 0, 0.0, 0
    resumed_from = None
    if resume:
        state, best_weights = checkpoint.load(device)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, seconds, tokens = int(state["step"]), float(state["seconds"]), int(state["tokens"])
        history, evals, best = state["history"], state["evals"], state["best"]
        _set_rng_state(state["rng"])
        resumed_from = step
        say(f"distill: resuming at step {step} of {total}")
    else:
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)

    def run_eval() -> None:
        nonlocal best, best_weights
        metrics = {"step": float(step), **evaluate(student, held_out, task, config, layer_map, parts)}
        student.train()
        evals.append(metrics)
        if better(task, metrics, best):
            best, best_weights = metrics, _clone_weights(student)
            dirty["best"] = True

    def save(rng: dict[str, Any]) -> None:
        state = {
            "student": student.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "seconds": seconds,
            "tokens": tokens,
            "history": history,
            "evals": evals,
            "best": best,
            "rng": rng,
        }
        checkpoint.save(state, best_weights if dirty["best"] else None)
        dirty["best"] = False

    dirty = {"best": False}
    student.train()
    teacher.eval()
    if not evals:
        run_eval()
    cache = _teacher_cache(teacher, train_set, task, config, layer_map, pad_id, device, quiet, per_epoch, total, say)
    bar = _progress(total, step, quiet)
    started = time.perf_counter() - seconds
    rng = _rng_state()  # the state the next step starts from: what a checkpoint must hold
    epoch_seen, batches = -1, []
    window: list[tuple[float, int]] = []
    try:
        while step < total:
            epoch, index = divmod(step, per_epoch)
            if epoch != epoch_seen:
                batches = epoch_batches(lengths, config.batch_size, config.seed, epoch, config.group_by_length)
                epoch_seen = epoch
            batch = collate([train_set[i] for i in batches[index]], pad_id, device)
            tick = time.perf_counter()
            if cache is not None:
                teacher_out = cache.batch(batches[index], batch["input_ids"].shape[1], device)
            else:
                with torch.no_grad():
                    teacher_out = forward(teacher, batch, hidden)
            student_out = forward(student, batch, hidden)
            loss, values = distill_loss(
                task, student_out, teacher_out, batch["attention_mask"], batch.get("labels"), config, layer_map, parts
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), config.max_grad_norm)
            with interrupts.deferred():
                optimizer.step()
                scheduler.step()
                step += 1
                rng = _rng_state()
            real = int(batch["attention_mask"].sum())
            tokens += real
            lr = scheduler.get_last_lr()[0]
            history.append({"step": float(step), "loss": float(loss.detach()), "lr": lr, **values})
            window = (window + [(time.perf_counter() - tick, real)])[-20:]
            rate = sum(n for _, n in window) / max(sum(t for t, _ in window), 1e-9)
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", tok_s=f"{rate:.0f}", refresh=False)
            bar.update(1)
            interrupts.check()
            if step % config.eval_every == 0 or step == total:
                run_eval()
                seconds = time.perf_counter() - started
                save(rng)
                if not quiet:
                    bar.write(_eval_line(task, step, total, evals[-1]), file=sys.stderr)
            if on_step is not None:
                on_step(step)
    except KeyboardInterrupt:
        seconds = time.perf_counter() - started
        bar.close()
        save(rng)
        say(f"distill: interrupted at step {step} of {total}; checkpoint saved, continue with --resume")
        raise
    bar.close()
    seconds = time.perf_counter() - started
    if best_weights is not None:
        student.load_state_dict(best_weights)
    student.eval()
    assert best is not None
    return TrainResult(step, total, history, evals, best, seconds, tokens, resumed_from)


def _eval_line(task: Task, step: int, total: int, metrics: dict[str, float]) -> str:
    from pocketbert.distill.evaluate import PRIMARY_METRIC, WORST_COSINE

    primary, worst = PRIMARY_METRIC[task], WORST_COSINE[task]
    text = f"eval @ {step}/{total}: {primary} {metrics.get(primary, float('nan')):.4f}"
    text += f", worst cosine {metrics.get(worst, float('nan')):.4f}, loss {metrics['eval_loss']:.4f}"
    if "accuracy" in metrics:
        text += f", accuracy {metrics['accuracy']:.3f}"
    return text
