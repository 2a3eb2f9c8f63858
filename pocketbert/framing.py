"""Length-prefixed pickles over a pipe: how pocketbert talks to its worker processes.

A message is an 8-byte little-endian length, then a pickle. Both ends are pocketbert (the bench workers and the
kernel-family guests), so pickle is safe here; it carries NumPy arrays without copies through text.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import time
from typing import IO, Any

_HEADER = struct.Struct("<Q")


class FrameTimeout(Exception):
    """No whole message arrived before the deadline."""


def send(stream: IO[bytes], message: Any) -> None:
    """Write one message and flush."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise FrameTimeout("no answer in time")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv(fd: int, timeout: float | None = None) -> Any:
    """Read one message from file descriptor ``fd``; :class:`EOFError` at end of stream, :class:`FrameTimeout`
    after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exact(fd, size, deadline))
