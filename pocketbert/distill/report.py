"""The distillation report written beside the student, in ``STUDENT/distill/``.

* ``summary.json``: settings, teacher and student sizes (parameters, fp32 MB, multiply-adds), held-out metrics of
  the initial (layer-dropped) student, the best and the last one, timings, the next command, and what the student
  was made from with the sha256 of its files (``inputs``, ``files_sha256``; see :mod:`pocketbert.distill.freshness`);
* ``history.json``: the loss of every step and every evaluation;
* ``curves.png``: training loss and held-out agreement against the step;
* ``report.md``: the same for people.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from pocketbert.distill.config import DistillConfig
from pocketbert.distill.evaluate import PRIMARY_METRIC, WORST_COSINE
from pocketbert.distill.student import count_parameters, multiply_adds, teacher_layers
from pocketbert.distill.train import TrainResult
from pocketbert.tasks import Task

MACS_SEQ = 128
KIND = "pocketbert-distill"


def _model_facts(model: Any, task: Task) -> dict[str, Any]:
    params = count_parameters(model)
    return {
        "architecture": model.config.model_type,
        "layers": teacher_layers(model),
        "parameters": params,
        "fp32_mb": round(params * 4 / 1e6, 2),
        f"macs_seq{MACS_SEQ}": multiply_adds(model, task, MACS_SEQ),
    }


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _smooth(values: list[float], width: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def plot_curves(result: TrainResult, task: Task, path: Path) -> Path:
    """Training loss (raw and smoothed) and held-out agreement / worst cosine per step, saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in result.history]
    losses = [h["loss"] for h in result.history]
    if steps:
        left.plot(steps, losses, color="#bbbbbb", linewidth=0.6, label="per step")
        left.plot(steps, _smooth(losses, max(1, len(losses) // 50)), color="#1f77b4", label="smoothed")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.set_yscale("log" if losses and min(losses) > 0 else "linear")
    left.legend()
    left.set_title("training loss")
    primary, worst = PRIMARY_METRIC[task], WORST_COSINE[task]
    eval_steps = [e["step"] for e in result.evals]
    right.plot(eval_steps, [e.get(primary, float("nan")) for e in result.evals], "o-", label=primary)
    right.plot(eval_steps, [e.get(worst, float("nan")) for e in result.evals], "s--", label=f"{worst} (worst)")
    right.axvline(result.best["step"], color="#2ca02c", linestyle=":", label="best (kept)")
    right.set_xlabel("step")
    right.set_title("held-out agreement with the teacher")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else str(value)


def _metric_rows(task: Task, init: dict, best: dict, last: dict, teacher_accuracy: float | None) -> list[str]:
    names = [PRIMARY_METRIC[task], WORST_COSINE[task]]
    if task is Task.QUESTION_ANSWERING:
        names.append("end_logits.cosine_min")
    names.append("eval_loss")
    if "accuracy" in best:
        names.append("accuracy")
    rows = ["| held-out metric | initial (layers dropped) | best (kept) | last | teacher |", "|---|---|---|---|---|"]
    for name in names:
        teacher = {"accuracy": teacher_accuracy, PRIMARY_METRIC[task]: 1.0, "eval_loss": None}.get(name, 1.0)
        rows.append(
            f"| {name} | {_fmt(init.get(name))} | {_fmt(best.get(name))} | {_fmt(last.get(name))} | {_fmt(teacher)} |"
        )
    return rows


def write_report(
    stage: Path,
    *,
    output: Path,
    config: DistillConfig,
    lm: Any,
    student: Any,
    teacher: Any,
    task: Task,
    architecture: str,
    layer_map: list[int],
    result: TrainResult,
    counts: dict[str, int],
    teacher_accuracy: float | None,
    command: str,
    device: str,
    wall_seconds: float,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``stage/distill/`` (see the module docstring) and return the summary; ``provenance`` (what the
    student was made from and its files' sha256, see :mod:`pocketbert.distill.freshness`) is added to it."""
    folder = Path(stage) / "distill"
    folder.mkdir(parents=True, exist_ok=True)
    teacher_facts = _model_facts(teacher, task)
    student_facts = _model_facts(student, task)
    macs = f"macs_seq{MACS_SEQ}"
    summary: dict[str, Any] = {
        "kind": KIND,
        "task": task.value,
        "teacher": {"source": lm.source, "origin": lm.origin, **teacher_facts},
        "student": {"output": str(output), **student_facts, "layer_map": layer_map},
        "ratios": {
            "parameters": round(student_facts["parameters"] / teacher_facts["parameters"], 4),
            "macs": round(student_facts[macs] / teacher_facts[macs], 4),
        },
        "data": {"file": config.data, "eval_file": config.eval_data, **counts},
        "settings": config.to_dict(),
        "metrics": {
            "initial": result.evals[0],
            "best": result.best,
            "last": result.evals[-1],
            "teacher_accuracy": teacher_accuracy,
        },
        "training": {
            "steps": result.steps,
            "total_steps": result.total_steps,
            "seconds": round(result.seconds, 1),
            "wall_seconds": round(wall_seconds, 1),
            "train_tokens": result.train_tokens,
            "tokens_per_second": round(result.train_tokens / max(result.seconds, 1e-9), 1),
            "device": device,
            "cpu": cpu_name(),
            "resumed_from": result.resumed_from,
        },
        "next_command": command,
        **(provenance or {}),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    (folder / "history.json").write_text(json.dumps({"steps": result.history, "evals": result.evals}), encoding="utf-8")
    plot_curves(result, task, folder / "curves.png")
    t, s = teacher_facts, student_facts
    lines = [
        f"# Distillation: {lm.origin}",
        "",
        f"Task `{task.value}`. Student: {architecture}, {s['layers']} layer(s) initialised from teacher layer(s) "
        f"{', '.join(map(str, layer_map))} (of {t['layers']}); embeddings and head copied.",
        "",
        "| | teacher | student | student / teacher |",
        "|---|---|---|---|",
        f"| layers | {t['layers']} | {s['layers']} | |",
        f"| parameters | {t['parameters']:,} | {s['parameters']:,} | {summary['ratios']['parameters']:.2f} |",
        f"| size fp32 | {t['fp32_mb']} MB | {s['fp32_mb']} MB | |",
        f"| multiply-adds, 1 x {MACS_SEQ} tokens | {_count(t[macs])} | {_count(s[macs])} "
        f"| {summary['ratios']['macs']:.2f} |",
        "",
        f"Held-out: {counts['eval_examples']} examples never trained on; best student at step "
        f"{int(result.best['step'])} of {result.steps} (kept).",
        "",
        *_metric_rows(task, result.evals[0], result.best, result.evals[-1], teacher_accuracy),
        "",
        "![curves](curves.png)",
        "",
        f"Training: {counts['train_examples']} examples ({counts['labelled_train_examples']} labelled), "
        f"{result.steps} steps of {config.batch_size}, {result.seconds:.0f} s on {device} ({cpu_name()}), "
        f"{summary['training']['tokens_per_second']:.0f} tokens/s; lr {config.learning_rate:g}, warm-up "
        f"{config.warmup:g}, T = {config.temperature:g}.",
        "",
        "Next: export, quantize and check the student against its teacher:",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return summary
