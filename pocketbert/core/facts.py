"""What the process that ran an artifact saw: ISA, CPU model, CPU features, runtime and version.

Runs on the host and inside emulated workers (:mod:`pocketbert.kernels.worker`), so it imports only the standard
library and NumPy. CPU features are the ones NumPy's own run-time dispatch detected in this process (``cpuid`` on
x86, the kernel's ``HWCAP`` bits on aarch64), which under QEMU are those of the emulated CPU model, not the host's;
aarch64 adds the ``HWCAP2`` bits NumPy does not list (i8mm, bf16, SVE2).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import platform
from pathlib import Path
from typing import Any

HOST = "host"  # the kernel family of this process: the machine's own CPU, natively

# aarch64 auxiliary-vector bits (linux/arch/arm64/include/uapi/asm/hwcap.h)
_AT_HWCAP, _AT_HWCAP2 = 16, 26
_ARM_HWCAP = {"asimddp": 1 << 20, "sve": 1 << 22}
_ARM_HWCAP2 = {"sve2": 1 << 1, "i8mm": 1 << 13, "bf16": 1 << 14}
# x86 flags of /proc/cpuinfo that NumPy does not report (read only when running natively)
_X86_EXTRA_FLAGS = ("avx_vnni", "amx_int8", "amx_bf16")


def _numpy_features() -> list[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return sorted(name for name, present in __cpu_features__.items() if present)


def _arm_hwcaps() -> list[str]:
    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return []
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    hwcap, hwcap2 = getauxval(_AT_HWCAP), getauxval(_AT_HWCAP2)
    found = [name for name, bit in _ARM_HWCAP.items() if hwcap & bit]
    return found + [name for name, bit in _ARM_HWCAP2.items() if hwcap2 & bit]


def _proc_cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip().lower(), value.strip())
    return info


def int8_kernel_class(machine: str, features: list[str]) -> str:
    """A short name for the int8 dot-product instructions available: what decides int8 speed and numerics.

    x86: ``amx`` (AMX int8 tiles, with VNNI), ``vnni`` (AVX-512 VNNI or AVX-VNNI: u8 x s8 products summed in
    int32), ``avx2-no-vnni`` (``vpmaddubsw``
    sums pairs of u8 x s8 products in saturating int16), ``sse``; aarch64: ``i8mm``, ``dotprod``, ``neon``.
    """
    have = {f.lower() for f in features}
    if machine in ("x86_64", "amd64", "AMD64"):
        if "amx_int8" in have:
            return "amx"
        if have & {"avx512vnni", "avx_vnni"}:
            return "vnni"
        return "avx2-no-vnni" if "avx2" in have else "sse"
    if machine in ("aarch64", "arm64"):
        if "i8mm" in have:
            return "i8mm"
        return "dotprod" if "asimddp" in have else "neon"
    return "unknown"


def runtime_version(distribution: str) -> str | None:
    """The installed version of a runtime's distribution (``onnxruntime``, ``ai-edge-litert``), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def process_facts(runtime: str | None = None, *, emulated_cpu: str | None = None) -> dict[str, Any]:
    """The kernel facts of this process: ``isa``, ``cpu``, ``features``, ``int8_kernels``, ``runtime``,
    ``runtime_version``, ``python``.

    ``emulated_cpu`` is the QEMU CPU model when this process runs under emulation (then /proc/cpuinfo, which QEMU
    passes through from the host, is not read).
    """
    machine = platform.machine()
    features = _numpy_features()
    info = {} if emulated_cpu else _proc_cpuinfo()
    if machine in ("aarch64", "arm64"):
        features += [f for f in _arm_hwcaps() if f.upper() not in features]
    elif not emulated_cpu:
        flags = info.get("flags", "").split()
        features += [f.upper() for f in _X86_EXTRA_FLAGS if f in flags]
    cpu = emulated_cpu or info.get("model name") or info.get("hardware") or platform.processor() or machine
    return {
        "isa": machine,
        "cpu": cpu,
        "features": features,
        "int8_kernels": int8_kernel_class(machine, features),
        "runtime": runtime,
        "runtime_version": runtime_version(runtime) if runtime else None,
        "python": platform.python_version(),
    }
