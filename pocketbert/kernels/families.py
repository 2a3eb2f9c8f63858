"""The kernel families parity can run an artifact on, and what each needs on this machine.

A family is a way to start a Python process whose ONNX Runtime and LiteRT use a given CPU's kernels. ``host`` is
this process's own interpreter; the others are the same pinned runtime versions under QEMU user-mode emulation
(Debian's ``qemu-user-static``) with a CPU model that decides which kernels the runtimes dispatch to.
"""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from pocketbert.core.facts import HOST
from pocketbert.errors import PocketbertError

__all__ = ["HOST"]


@dataclass(frozen=True)
class KernelFamily:
    """One kernel family.

    Attributes:
        name: the ``--kernels`` name.
        description: what it stands for, for help texts and reports.
        qemu: the QEMU user-mode binary, or None for the host.
        cpu: the QEMU ``-cpu`` model.
        isa: the guest's ``uname -m``.
        int8_only: why the family runs int8 artifacts only (None: every precision).
        needs_arm64_env: runs in the aarch64 environment (Debian packages and aarch64 wheels) of :mod:`.provision`.
    """

    name: str
    description: str
    qemu: str | None = None
    cpu: str | None = None
    isa: str | None = None
    needs_arm64_env: bool = False
    int8_only: str | None = None

    @property
    def emulated(self) -> bool:
        return self.qemu is not None

    def declines(self, precision: str) -> str | None:
        """Why this family does not run artifacts of ``precision``, or None when it does."""
        return None if self.int8_only is None or precision.startswith("int8") else self.int8_only


FAMILIES: dict[str, KernelFamily] = {
    f.name: f
    for f in (
        KernelFamily(HOST, "this machine's runtime, natively"),
        KernelFamily(
            "arm64",
            "aarch64 builds of the same runtimes, QEMU Cortex-A76 (NEON + dot product, as in most phones since 2019)",
            qemu="qemu-aarch64-static",
            cpu="cortex-a76",
            isa="aarch64",
            needs_arm64_env=True,
        ),
        KernelFamily(
            "arm64-i8mm",
            "aarch64 builds, QEMU 'max' CPU with SVE off (dot product and int8 matrix multiply, newer phones)",
            qemu="qemu-aarch64-static",
            cpu="max,sve=off,sme=off",
            isa="aarch64",
            needs_arm64_env=True,
        ),
        KernelFamily(
            "x86-avx2",
            "this host's x86_64 runtimes, QEMU EPYC-Rome (Zen 2: AVX2, no AVX-512, no VNNI)",
            qemu="qemu-x86_64-static",
            cpu="EPYC-Rome",
            isa="x86_64",
            int8_only=(
                "x86-avx2 runs int8 artifacts only: QEMU emulates x86 FMA in software, so a float model takes hours, "
                "and float kernels do not saturate"
            ),
        ),
    )
}


def parse_kernels(value: str | list[str] | None) -> list[str]:
    """``host,arm64`` (or a list) as known family names in order, without repeats; one-line error otherwise."""
    if value is None:
        return [HOST]
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise PocketbertError(f"unknown kernel family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    if not names:
        raise PocketbertError(f"--kernels needs at least one family; known: {', '.join(FAMILIES)}")
    return list(dict.fromkeys(names))


def qemu_binary(family: KernelFamily) -> Path | None:
    """Where the family's QEMU binary is, or None."""
    found = shutil.which(family.qemu) if family.qemu else None
    return Path(found) if found else None


def missing(family: KernelFamily) -> str | None:
    """None when ``family`` can run here; else one line naming what is missing and the command that adds it."""
    from pocketbert.kernels.provision import env_dir, is_ready

    if not family.emulated:
        return None
    if family.isa == "x86_64" and platform.machine() not in ("x86_64", "AMD64"):
        return f"kernel family {family.name} runs this host's x86_64 runtimes, but this host is {platform.machine()}"
    if qemu_binary(family) is None:
        return (
            f"kernel family {family.name} needs {family.qemu} (Debian package qemu-user-static): "
            f"run 'pocketbert kernels setup {family.name}'"
        )
    if family.needs_arm64_env and not is_ready(env_dir()):
        return (
            f"kernel family {family.name} needs the aarch64 runtime environment, not set up in {env_dir()}: "
            f"run 'pocketbert kernels setup {family.name}'"
        )
    return None


def host_python() -> str:
    """The interpreter that runs the host's runtimes (this one)."""
    return sys.executable
