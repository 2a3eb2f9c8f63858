"""``pocketbert distill``: make a smaller student from a teacher (fewer layers, same width) and ship it.

Public entry points: :class:`~pocketbert.distill.config.DistillConfig` and
:func:`~pocketbert.distill.config.parse_distill_section` (settings, e.g. from a ``[distill]`` TOML table) and
:func:`~pocketbert.distill.job.run_distill` (the whole job). Modules: ``student`` (shape and initialisation),
``data`` (reading, splitting, batching), ``losses``, ``train`` (loop and checkpoint), ``evaluate``, ``report``.
"""

from __future__ import annotations

from typing import Any

from pocketbert.distill.config import DistillConfig, parse_distill_section

__all__ = ["DistillConfig", "parse_distill_section", "run_distill"]


def run_distill(config: DistillConfig, **kwargs: Any) -> Any:
    """:func:`pocketbert.distill.job.run_distill` (imported on first use: it needs torch)."""
    from pocketbert.distill.job import run_distill as run

    return run(config, **kwargs)
