"""The ``distill`` stage of ``pocketbert run``: make the student of a ``[distill]`` table, or keep the one in OUT.

The student is ``OUT/student``. Like every other stage it is built beside ``OUT``, in a work directory of the run
(``WORK/student``, written atomically by :func:`pocketbert.distill.run_distill`; apart from the building
directory, which the exporters replace as a whole), and moves into ``OUT`` with the rest once every stage has
finished, so a failed or interrupted run leaves ``OUT`` as it was. The stage is up to date, and skipped, when
``OUT/student`` was made with the same training settings from the same data files and teacher and its files are
intact (:func:`pocketbert.distill.freshness.stale_reason`); the student is then hard-linked into the work
directory, not trained again. An interrupted distillation leaves its checkpoint beside ``OUT``
(``.OUT.distill-checkpoint``); the next run with the same settings and data resumes from it, one with other
settings starts over.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pocketbert.distill.config import TRAINING_KEYS, DistillConfig
from pocketbert.run.config import STUDENT_DIR
from pocketbert.run.stages import StageLog

if TYPE_CHECKING:
    from pocketbert.distill.train import Checkpoint


@dataclass
class Student:
    """The student of this run.

    Attributes:
        path: where it is while the run works (``WORK/student``).
        final: where it will be once the run has finished (``OUT/student``, absolute and resolved).
        teacher: the teacher's model source (the bench baseline unless the configuration names another).
    """

    path: Path
    final: Path
    teacher: str


def teacher_source(config: DistillConfig) -> str:
    """The teacher as a model source for the bench: as configured, or the embedded model's directory."""
    from pocketbert.loading import default_model_dir

    return config.teacher or str(default_model_dir())


def link_tree(source: Path, target: Path) -> None:
    """Copy the directory tree ``source`` to ``target`` by hard links (file copies across filesystems)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def _resumable(checkpoint: Checkpoint, config: DistillConfig) -> bool:
    """Whether the checkpoint an interrupted run left was made with ``config``'s training settings and data."""
    from pocketbert.distill.freshness import data_digests

    settings = checkpoint.settings()
    values = config.to_dict()
    try:
        data = data_digests(config)
    except OSError:
        return False
    return settings.get("settings") == {k: values[k] for k in TRAINING_KEYS} and settings.get("data") == data


def distill_stage(config: DistillConfig, out_dir: Path, work: Path, log: StageLog) -> Student:
    """Run (or skip) the ``distill`` stage for ``OUT`` = ``out_dir``; the student ends in ``work/student``.

    Raises:
        PocketbertError: bad data, teacher or settings, from :func:`pocketbert.distill.run_distill` (one line).
        KeyboardInterrupt: interrupted while training; the checkpoint beside ``OUT`` lets the next run resume.
    """
    from pocketbert.distill import run_distill
    from pocketbert.distill.freshness import stale_reason
    from pocketbert.distill.train import Checkpoint

    previous = Path(out_dir) / STUDENT_DIR
    student = Student(work / STUDENT_DIR, Path(out_dir).resolve() / STUDENT_DIR, teacher_source(config))
    reason = stale_reason(config, previous)
    if reason is None:
        link_tree(previous, student.path)
        log.skip("distill", f"up to date: {previous} (same settings, data and teacher)")
        return student
    checkpoint = Checkpoint.beside(Path(out_dir))
    resume = checkpoint.exists() and _resumable(checkpoint, config)
    run = replace(config, output=str(student.path), resume=resume, force=not resume)
    with log.stage("distill", own_progress=True) as record:
        try:
            result = run_distill(run, quiet=log.quiet, checkpoint=checkpoint.directory, shown_as=student.final)
        except KeyboardInterrupt:
            if checkpoint.exists():
                log.info(f"distill: the next run with this configuration resumes from {checkpoint.directory}")
            raise
        why = "resumed" if resume else ("trained" if reason == "no student yet" else f"retrained ({reason})")
        record.note = f"{why}; {_metric_note(result.summary)}"
    return student


def _metric_note(summary: dict[str, Any]) -> str:
    """The kept evaluation's agreement with the teacher on the held-out split and its worst cosine."""
    from pocketbert.distill.evaluate import PRIMARY_METRIC, WORST_COSINE
    from pocketbert.tasks import Task

    task, best = Task(summary["task"]), summary["metrics"]["best"]
    shown = {PRIMARY_METRIC[task]: PRIMARY_METRIC[task], WORST_COSINE[task]: "worst cosine"}
    return "held-out " + ", ".join(f"{label} {best[name]:.3f}" for name, label in shown.items() if name in best)
