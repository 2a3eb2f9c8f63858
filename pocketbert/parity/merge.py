"""``pocketbert parity --artifact X`` updates X's verdict in the report and keeps the other artifacts' verdicts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pocketbert.parity.comparator import ArtifactParity, GateCheck, ParityReport


def artifact_from_dict(data: dict[str, Any]) -> ArtifactParity:
    """An :class:`ArtifactParity` from its ``to_dict`` form (as stored in ``parity.json``)."""
    return ArtifactParity(
        name=data["name"],
        precision=data["precision"],
        metrics=dict(data.get("metrics") or {}),
        checks=[
            GateCheck(**{k: c[k] for k in ("metric", "op", "threshold", "value", "passed")}) for c in data["checks"]
        ],
        error=data.get("error"),
    )


def merge_previous(report: ParityReport, previous: Path, names: list[str]) -> ParityReport:
    """``report`` plus the verdicts in the ``previous`` parity.json of artifacts it did not check, for the same model
    and task, in manifest order (``names``); artifacts no longer in the manifest are dropped."""
    try:
        old = json.loads(Path(previous).read_text())
        if old.get("model") != report.model or old.get("task") != report.task:
            return report
        earlier = {a["name"]: artifact_from_dict(a) for a in old.get("artifacts", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return report
    current = {a.name: a for a in report.artifacts}
    merged = [current.get(name) or earlier.get(name) for name in names]
    return dataclasses.replace(report, artifacts=[a for a in merged if a is not None])
