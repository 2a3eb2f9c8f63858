"""The guest side of an emulated kernel family: one artifact's runner, driven by the host over a pipe.

Started by :class:`pocketbert.kernels.remote.EmulatedRunner` as ``python -m pocketbert.kernels.worker`` under QEMU.
It imports only the standard library, NumPy, the runtime and pocketbert's runner modules (never torch), so it runs
in the minimal aarch64 environment of :mod:`pocketbert.kernels.provision`.

Protocol: :mod:`pocketbert.framing` messages on stdin and on the original stdout;
stdout is re-pointed at stderr first, so whatever a runtime prints never corrupts a reply. Requests are
``("load", artifact_dict, out_dir, threads)``, ``("infer", feed)`` and ``("close",)``; replies are ``("ok", value)``
or ``("error", one_line)``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from pocketbert.framing import recv, send


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def serve(requests: int, replies: BinaryIO) -> None:
    """Answer requests until ``close`` or end of input."""
    from pocketbert.core.artifact import Artifact
    from pocketbert.core.facts import process_facts
    from pocketbert.formats import runner_for

    runner = None
    while True:
        try:
            message = recv(requests)
        except EOFError:
            return
        kind = message[0]
        try:
            if kind == "load":
                _, artifact, out_dir, threads = message
                runner = runner_for(Artifact.from_dict(artifact), Path(out_dir), threads)
                runner.load()
                value: Any = process_facts(runner.runtime, emulated_cpu=os.environ.get("POCKETBERT_EMULATED_CPU"))
            elif kind == "infer":
                if runner is None:
                    raise RuntimeError("infer before load")
                value = runner.infer(message[1])
            elif kind == "close":
                if runner is not None:
                    runner.close()
                send(replies, ("ok", None))
                return
            else:
                raise ValueError(f"unknown request {kind!r}")
            send(replies, ("ok", value))
        except Exception as exc:  # every failure goes back to the host as one line
            send(replies, ("error", _one_line(exc)))


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.fileno(), replies)


if __name__ == "__main__":
    main()
