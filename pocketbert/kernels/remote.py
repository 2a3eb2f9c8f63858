"""Run an artifact on an emulated kernel family: a :class:`Runner` whose runtime lives in a QEMU guest process.

The host keeps the PyTorch reference and the metrics; only feeds and outputs cross the pipe
(:mod:`pocketbert.kernels.worker`). The guest process starts once per artifact and family (its start-up under
emulation costs seconds) and serves every feed. Emulated runs are never timed: ``timing_meaningful`` is False.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import pocketbert
from pocketbert.core.artifact import Artifact
from pocketbert.core.runner import Feed, Runner
from pocketbert.errors import PocketbertError
from pocketbert.framing import FrameTimeout, recv, send
from pocketbert.kernels.families import KernelFamily, host_python, missing, qemu_binary
from pocketbert.kernels.provision import PYTHON, env_dir, guest_env

_SOURCE_ROOT = Path(pocketbert.__file__).resolve().parent.parent  # the directory that holds the package
_QEMU_NOISE = "TCG doesn't support requested feature"  # QEMU's warnings for CPU-model bits TCG leaves out


def qemu_version(binary: Path) -> str:
    """``qemu-aarch64 version 7.2.22 …`` → ``7.2.22``."""
    try:
        first = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"
    return first.split("version", 1)[-1].split()[0] if "version" in first else first


def guest_command(family: KernelFamily) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start :mod:`pocketbert.kernels.worker` on ``family``."""
    qemu = qemu_binary(family)
    if qemu is None:
        raise PocketbertError(missing(family) or f"{family.qemu} not found")
    if family.needs_arm64_env:
        root = env_dir()
        cmd = [str(qemu), "-cpu", str(family.cpu), "-L", str(root), str(root / PYTHON)]
        env = guest_env(root, [_SOURCE_ROOT])
    else:
        cmd = [str(qemu), "-cpu", str(family.cpu), host_python()]
        env = guest_env(None, [_SOURCE_ROOT])
    env["POCKETBERT_EMULATED_CPU"] = str(family.cpu)
    return [*cmd, "-m", "pocketbert.kernels.worker"], env


class EmulatedRunner(Runner):
    """Runs ``artifact``'s own runner (ONNX Runtime, LiteRT) inside a QEMU guest of ``family``."""

    timing_meaningful = False

    def __init__(self, artifact: Artifact, out_dir: Path, family: KernelFamily, threads: int | None = None) -> None:
        super().__init__(f"{artifact.name}@{family.name}")
        self.artifact = artifact
        self.out_dir = Path(out_dir).absolute()
        self.family = family
        self.kernel_family = family.name
        self.threads = threads
        self._proc: subprocess.Popen | None = None
        self._stderr: Any = None
        self._facts: dict[str, Any] = {}

    def load_impl(self) -> None:
        reason = missing(self.family)
        if reason:
            raise PocketbertError(reason)
        cmd, env = guest_command(self.family)
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        facts = self._call("load", self.artifact.to_dict(), str(self.out_dir), self.threads)
        qemu = qemu_binary(self.family)
        self._facts = {
            "family": self.family.name,
            "execution": "emulated",
            "emulator": f"{self.family.qemu} {qemu_version(qemu) if qemu else ''} -cpu {self.family.cpu}",
            **facts,
        }

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        return self._call("infer", {k: np.ascontiguousarray(v) for k, v in feed.items()})

    def kernel_facts(self) -> dict[str, Any]:
        return dict(self._facts)

    def close_impl(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                send(proc.stdin, ("close",))
                recv(proc.stdout.fileno(), timeout=30)
            proc.wait(timeout=30)
        except (OSError, EOFError, FrameTimeout, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def _call(self, *message: Any) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            send(proc.stdin, message)
            reply = recv(proc.stdout.fileno())
        except (OSError, EOFError):
            reply = None
        if reply is None:
            code = proc.wait()
            raise PocketbertError(
                f"the {self.family.name} guest for {self.artifact.name} died (exit {code}): {self._last_error_line()}"
            )
        status, value = reply
        if status != "ok":
            raise PocketbertError(f"on {self.family.name} kernels: {value}")
        return value

    def _last_error_line(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if _QEMU_NOISE not in ln]
        return lines[-1].strip() if lines else "no output"
