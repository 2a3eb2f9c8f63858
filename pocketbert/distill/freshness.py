"""Whether a finished student is what a distillation with given settings would make now, without loading a model.

A student is a function of its training settings (:data:`~pocketbert.distill.config.RESULT_KEYS`), its data files
and its teacher. ``run_distill`` records these (:func:`inputs`) and the sha256 of every file of the student
(:func:`student_files`) in ``distill/summary.json``; :func:`stale_reason` compares them with a new configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pocketbert.core.integrity import digests
from pocketbert.distill.config import RESULT_KEYS, DistillConfig
from pocketbert.errors import PocketbertError

SUMMARY = Path("distill") / "summary.json"
REPORT_DIR = "distill"


def data_digests(config: DistillConfig) -> dict[str, str]:
    """sha256 (hex) of the data file and, when given, the held-out data file, keyed ``data`` / ``eval_data``."""
    from pocketbert.distill.data import file_digest

    found = {"data": file_digest(Path(str(config.data)).expanduser())}
    if config.eval_data:
        found["eval_data"] = file_digest(Path(config.eval_data).expanduser())
    return found


def teacher_identity(source: str | None) -> dict[str, Any]:
    """What identifies the teacher: for a local directory (and the embedded default) its resolved path and the
    sha256 of its top-level files (config, weights, tokenizer); for a hub id or ``random:`` preset its name."""
    from pocketbert.loading import default_model_dir

    path = default_model_dir() if not source else Path(source).expanduser()
    if not path.is_dir():
        return {"source": source}
    files = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return {"source": str(path.resolve()), "sha256": digests(path, files)}


def inputs(config: DistillConfig, data: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the student depends on: the :data:`RESULT_KEYS` settings, the data digests (computed when
    ``data`` is not given) and the teacher's identity."""
    values = config.to_dict()
    return {
        "settings": {k: values[k] for k in RESULT_KEYS},
        "data": data if data is not None else data_digests(config),
        "teacher": teacher_identity(config.teacher),
    }


def student_files(student: Path) -> dict[str, str]:
    """sha256 (hex) of every file of the student directory except its report (``distill/``), by relative path."""
    student = Path(student)
    files = [
        p.relative_to(student).as_posix()
        for p in student.rglob("*")
        if p.is_file() and p.relative_to(student).parts[0] != REPORT_DIR
    ]
    return digests(student, files)


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return key
    return None


def stale_reason(config: DistillConfig, student: Path) -> str | None:
    """``None`` when ``student`` (a previous distill output) was made with ``config``'s settings from the same data
    and teacher and its files are intact; else why not, in a few words (``"layers: 1 then, 2 now"``). A data file
    that cannot be read makes the student stale (``run_distill`` then refuses it with its own one-line error).

    Raises:
        PocketbertError: the previous student's files cannot be read (one line).
    """
    path = Path(student) / SUMMARY
    if not path.is_file():
        return "no student yet"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{path} is unreadable"
    old = summary.get("inputs")
    if not isinstance(old, dict):
        return "the previous student records no inputs"
    try:
        new = inputs(config)
    except OSError:
        return "a data file is unreadable"
    settings = _first_difference(old.get("settings") or {}, new["settings"])
    if settings is not None:
        then, now = (old.get("settings") or {}).get(settings), new["settings"].get(settings)
        return f"{settings}: {then!r} then, {now!r} now"
    if old.get("data") != new["data"]:
        changed = _first_difference(old.get("data") or {}, new["data"])
        return f"the {(changed or 'data').replace('_', ' ')} file changed"
    if old.get("teacher") != new["teacher"]:
        return "the teacher changed"
    recorded = summary.get("files_sha256")
    if not isinstance(recorded, dict) or not recorded:
        return "the previous student records no checksums"
    try:
        present = student_files(Path(student))
    except OSError as exc:
        raise PocketbertError(f"cannot read the previous student {student}: {exc}") from exc
    changed = _first_difference(recorded, present)
    return None if changed is None else f"the previous student's {changed} is changed or missing"
