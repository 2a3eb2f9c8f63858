"""One long-lived subprocess per runner, so memory, imports and thread pools never bleed between runtimes.

The parent starts ``python -m pocketbert.runtime_bench.worker`` with the thread-count environment pinned
(``OMP_NUM_THREADS`` …), then talks to it over stdin/stdout with length-prefixed pickles (the worker moves its own
stdout to stderr first, so a library that prints cannot corrupt the protocol; stderr goes to a log file whose last
line explains a crash). Requests:

* ``setup``: build the runner (threads pinned), run the first inference and the warm-up on every feed; replies
  with load and first-inference seconds, facts about the runner and per-length errors;
* ``time``: ``settle`` untimed then ``k`` timed inferences of one feed, replies the durations in seconds
  (``time.perf_counter``);
* ``outputs``: run a list of feeds, reply their outputs (for agreement with the baseline);
* ``memory``: peak and current resident set size in bytes (``VmHWM`` / ``VmRSS`` of ``/proc/self/status``);
* ``exit``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.framing import FrameTimeout, recv, send

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
SETUP_TIMEOUT_S = 1800.0
REQUEST_TIMEOUT_S = 900.0


class WorkerError(Exception):
    """A worker crashed, hung, or broke the protocol; the message is one line."""


def one_line(exc: BaseException) -> str:
    """The first line of the message for reports, prefixed with the type unless it is a user-facing error."""
    text = str(exc).strip()
    if isinstance(exc, PocketbertError) and text:
        return text.splitlines()[0]
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def memory_bytes() -> dict[str, int]:
    """Peak (``VmHWM``) and current (``VmRSS``) resident set size of this process, in bytes."""
    status = Path("/proc/self/status")
    values: dict[str, int] = {}
    if status.is_file():
        for line in status.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) * 1024  # reported in kB
    if "VmHWM" not in values:  # not Linux: ru_maxrss is bytes on macOS
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        values["VmHWM"] = peak if sys.platform == "darwin" else peak * 1024
    return {"peak_rss_bytes": values["VmHWM"], "rss_bytes": values.get("VmRSS", values["VmHWM"])}


# ---------------------------------------------------------------- child side


class _Child:
    """The worker's state: one runner and the feeds it is timed on."""

    def __init__(self) -> None:
        self.runner: Any = None
        self.feeds: dict[int, dict] = {}

    def setup(self, spec: Any, threads: int, feeds: dict[int, dict], warmup: int) -> dict[str, Any]:
        from pocketbert.runtime_bench.specs import build_runner, preimport

        begin_import = time.perf_counter()
        preimport(spec)
        import_s = time.perf_counter() - begin_import
        idle = memory_bytes()["rss_bytes"]  # interpreter + runtime libraries, before the model
        start = time.perf_counter()
        try:
            runner, info = build_runner(spec, threads)
            runner.load()
        except Exception as exc:  # reported as a failed runner; the others are still measured
            return {"status": "failed", "error": one_line(exc)}
        loaded = time.perf_counter()
        if not runner.timing_meaningful:
            runner.close()
            return {"status": "not-measurable", "reason": f"{type(runner).__name__} timing says nothing here"}
        self.runner, self.feeds = runner, feeds
        first_s, errors = None, {}
        for seq, feed in feeds.items():
            try:
                begin = time.perf_counter()
                runner.infer(feed)
                if first_s is None:
                    first_s = time.perf_counter() - begin
                for _ in range(warmup):
                    runner.infer(feed)
            except Exception as exc:  # one length can fail (e.g. beyond a static bucket); the rest still run
                errors[seq] = one_line(exc)
        return {
            "status": "ok",
            "kernel_facts": runner.kernel_facts(),
            "load_s": loaded - start,
            "first_inference_s": first_s,
            "info": info,
            "errors": errors,
            "idle_rss_bytes": idle,
            "import_s": import_s,
        }

    def time(self, seq: int, k: int, settle: int = 0) -> list[float]:
        feed, infer, clock = self.feeds[seq], self.runner.infer, time.perf_counter
        for _ in range(settle):
            infer(feed)
        durations = []
        for _ in range(k):
            begin = clock()
            infer(feed)
            durations.append(clock() - begin)
        return durations

    def outputs(self, feeds: list[dict]) -> list[dict]:
        return [self.runner.infer(feed) for feed in feeds]


def serve() -> None:
    """Child entry point: answer requests on stdin/stdout until ``exit`` or end of input."""
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to the log, not into the protocol
    from pocketbert.quiet import quiet_third_party

    quiet_third_party()
    child, fd = _Child(), sys.stdin.fileno()
    while True:
        try:
            request = recv(fd)
        except EOFError:
            return
        command = request["cmd"]
        try:
            if command == "setup":
                reply: Any = child.setup(request["spec"], request["threads"], request["feeds"], request["warmup"])
            elif command == "time":
                reply = child.time(request["seq"], request["k"], request.get("settle", 0))
            elif command == "outputs":
                reply = child.outputs(request["feeds"])
            elif command == "memory":
                reply = memory_bytes()
            elif command == "exit":
                return
            else:
                reply = {"error": f"unknown command {command!r}"}
            send(protocol, {"ok": True, "value": reply})
        except Exception as exc:
            send(protocol, {"ok": False, "error": one_line(exc)})


# ---------------------------------------------------------------- parent side


def pinned_env(threads: int) -> dict[str, str]:
    """The environment of a worker: every thread-pool size variable set to ``threads``."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_ENV})
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = str(Path(__file__).resolve().parents[2])  # so an uninstalled checkout imports the same pocketbert
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class Worker:
    """Parent-side handle of one worker subprocess running one runner."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.threads = threads
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pocketbert.runtime_bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=pinned_env(threads),
        )

    def _last_log_line(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def request(self, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S) -> Any:
        """Send one request and return the reply's value; :class:`WorkerError` when the worker fails."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            send(self.process.stdin, message)
            reply = recv(self.process.stdout.fileno(), timeout)
        except FrameTimeout:
            raise WorkerError("worker did not answer in time") from None
        except (EOFError, BrokenPipeError, OSError) as exc:
            code = self.process.poll()
            detail = self._last_log_line()
            why = f"worker exited with code {code}" if code is not None else f"worker pipe broke ({exc})"
            raise WorkerError(f"{why}{': ' + detail if detail else ''}") from None
        if not reply["ok"]:
            raise WorkerError(reply["error"])
        return reply["value"]

    def close(self) -> None:
        """Ask the worker to exit, kill it if it does not, and drop its log."""
        if self.process.poll() is None:
            try:
                send(self.process.stdin, {"cmd": "exit"})
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self.log.close()


def start_worker(name: str, threads: int) -> Worker:
    """Start a worker subprocess for the runner called ``name`` with ``threads`` threads."""
    if threads < 1:
        raise PocketbertError(f"--threads must be at least 1, got {threads}")
    return Worker(name, threads)


if __name__ == "__main__":
    serve()
