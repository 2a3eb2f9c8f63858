"""SIGINT and SIGTERM always stop the job, even when third-party code swallows the ``KeyboardInterrupt``.

Some libraries wrap imports in a bare ``except:`` (coremltools does, for its optional dependencies), so a Ctrl-C
landing there is lost. :func:`handling` installs handlers that remember the signal as well as raising
:class:`Interrupted`; :func:`check`, called at every stage boundary and before anything is moved into place,
raises again if a remembered signal was swallowed. :func:`deferred` holds signals back across a few system calls
that must not be split (two renames).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []


class Interrupted(KeyboardInterrupt):
    """The job was stopped by signal ``signum``; the exit code is ``128 + signum`` (130 for SIGINT)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handler(signum: int, frame: Any) -> None:
    _pending.append(signum)
    raise Interrupted(signum)


@contextmanager
def handling() -> Iterator[None]:
    """Install the SIGINT/SIGTERM handlers for the ``with`` body (main thread only) and restore the old ones."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending.clear()
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _pending.clear()


def check() -> None:
    """Raise :class:`Interrupted` if SIGINT or SIGTERM arrived since :func:`handling` began (even if swallowed),
    or is waiting to be delivered inside :func:`deferred`."""
    if _pending:
        raise Interrupted(_pending[0])
    waiting = sorted(set(SIGNALS) & signal.sigpending())
    if waiting:
        raise Interrupted(int(waiting[0]))


@contextmanager
def deferred() -> Iterator[None]:
    """Block SIGINT and SIGTERM for the ``with`` body; one that arrived meanwhile is delivered right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
