"""An exclusive lock per output directory, so two runs never write the same ``OUT`` at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pocketbert.errors import PocketbertError


class OutputLock:
    """``with OutputLock(out):`` holds ``OUT/../.OUT.lock`` (an ``flock``) or refuses with a one-line error.

    The kernel releases an ``flock`` when its process dies, so a crashed run never leaves a stale lock.
    """

    def __init__(self, out_dir: Path) -> None:
        out_dir = Path(out_dir).absolute()
        self.out_dir = out_dir
        self.path = out_dir.parent / f".{out_dir.name}.lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise PocketbertError(
                f"another pocketbert run (pid {holder}) is writing {self.out_dir}; wait for it or use another -o"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
