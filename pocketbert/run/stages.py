"""Stage timing and progress for the main job: a spinner per stage and one line with its elapsed time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

from pocketbert import interrupts


@dataclass
class StageRecord:
    """One stage: its name, wall time in seconds, and outcome (``ok``, ``skipped``, ``failed``) with a note."""

    name: str
    seconds: float = 0.0
    status: str = "ok"
    note: str = ""


@dataclass
class StageLog:
    """Times stages and shows progress on stderr (nothing when ``quiet``)."""

    quiet: bool = False
    records: list[StageRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True, quiet=self.quiet, highlight=False)

    @contextmanager
    def stage(self, name: str, own_progress: bool = False) -> Iterator[StageRecord]:
        """Time the ``with`` body as stage ``name``; an exception marks it failed and propagates. A SIGINT/SIGTERM
        that arrived before or during the stage (even one swallowed by a library) stops the job at its boundary.

        A spinner shows while the body runs, unless ``own_progress`` (the body draws its own progress bar on
        stderr: a line names the stage instead)."""
        interrupts.check()
        record = StageRecord(name)
        self.records.append(record)
        start = time.perf_counter()
        try:
            if own_progress:
                self._console.print(f"[dim]…[/] {name}")
            with nullcontext() if own_progress else self._console.status(f"{name} …"):
                yield record
            interrupts.check()
        except BaseException as exc:
            record.status, record.note = "failed", (str(exc).splitlines() or [type(exc).__name__])[0]
            raise
        finally:
            record.seconds = time.perf_counter() - start
            mark = {"ok": "[green]✓[/]", "skipped": "[yellow]–[/]", "failed": "[red]✗[/]"}[record.status]
            note = f"  {record.note}" if record.note else ""
            self._console.print(f"{mark} {name:<28} {record.seconds:7.1f} s{note}")

    def skip(self, name: str, note: str) -> None:
        """Record a stage that did not run, and say why."""
        self.records.append(StageRecord(name, 0.0, "skipped", note))
        self._console.print(f"[yellow]–[/] {name:<28}     0.0 s  {note}")

    def info(self, message: str) -> None:
        self._console.print(message)

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.records]
