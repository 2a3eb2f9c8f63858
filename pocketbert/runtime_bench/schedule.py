"""The timing schedule: rounds that visit every (runner, length) once, interleaved so noise hits all alike.

Round ``r`` visits every sequence length, and for each length every runner, starting the runner order at position
``r mod n`` (A B C, B C A, C A B, …): no runner always runs right after the same neighbour, and a burst of load
from the rest of the machine lands on every runner rather than on whichever happened to run then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pocketbert.runtime_bench.worker import WorkerError


@dataclass
class Timed:
    """Samples of one runner at one length: seconds ``(R, K)`` when every round ran, else the error."""

    samples: list[list[float]] = field(default_factory=list)
    error: str | None = None

    def array(self) -> np.ndarray:
        return np.asarray(self.samples, dtype=np.float64)


def round_order(names: list[str], round_index: int) -> list[str]:
    """Runner order in round ``round_index``: ``names`` rotated left by ``round_index``."""
    if not names:
        return []
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def run_rounds(
    timers: dict[str, Callable[[int, int], list[float]]],
    cells: dict[str, list[int]],
    seqs: list[int],
    repeats: int,
    iterations: int,
    advance: Callable[[], None] | None = None,
) -> tuple[dict[tuple[str, int], Timed], dict[str, str]]:
    """Time every runner on its measurable lengths for ``repeats`` interleaved rounds.

    Args:
        timers: runner name -> ``time(seq, k)`` returning ``k`` durations in seconds (a worker request).
        cells: runner name -> the lengths it is measured at (others are not applicable).
        seqs: every length, in order.
        repeats: rounds ``R``; iterations: timed inferences per visit ``K``.
        advance: called after each visit (the progress bar).

    Returns:
        ``(runner, seq) -> Timed`` and runner name -> error for runners that crashed (their cells are dropped:
        ratios are paired by round and a partial run has no partner rounds).
    """
    names = list(timers)
    timed = {(name, seq): Timed() for name in names for seq in cells.get(name, [])}
    crashed: dict[str, str] = {}
    for r in range(repeats):
        for seq in seqs:
            for name in round_order(names, r):
                if name in crashed or (name, seq) not in timed:
                    continue
                try:
                    timed[(name, seq)].samples.append(list(timers[name](seq, iterations)))
                except WorkerError as exc:
                    crashed[name] = str(exc)
                if advance:
                    advance()
    for (name, _seq), cell in timed.items():
        if name in crashed:
            cell.samples, cell.error = [], crashed[name]
    return timed, crashed


def visits(cells: dict[str, list[int]], repeats: int) -> int:
    """Number of timing visits :func:`run_rounds` makes (the progress bar's total)."""
    return repeats * sum(len(v) for v in cells.values())
