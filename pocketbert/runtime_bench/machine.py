"""The machine a benchmark ran on: CPU model, vector extensions, cores, load, and library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from pocketbert import __version__
from pocketbert.formats import libraries

# vector/matrix extensions that decide transformer CPU speed (int8 especially: VNNI, AMX)
INTERESTING_FLAGS: tuple[str, ...] = (
    "sse4_2",
    "fma",
    "f16c",
    "avx",
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def _cpuinfo() -> tuple[str, list[str], int | None]:
    """CPU model name, its interesting flags, and the number of physical cores (from ``/proc/cpuinfo``)."""
    path = Path("/proc/cpuinfo")
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    cores: set[tuple[str, str]] = set()
    if not path.is_file():
        return model, [], None
    physical = core = ""
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "Hardware") and value:
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    return model, [f for f in INTERESTING_FLAGS if f in flags], len(cores) or None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (a busy machine makes absolute times noise), or None where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe_machine() -> dict[str, Any]:
    """CPU model, flags, logical/physical/usable cores, OS, Python, load average and library versions."""
    model, flags, physical = _cpuinfo()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": model,
        "cpu_flags": flags,
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "libraries": {"pocketbert": __version__, **{name: _version(name) for name in libraries()}},
    }
