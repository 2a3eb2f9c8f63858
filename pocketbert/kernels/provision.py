"""Set up the emulated kernel families: QEMU, and an aarch64 Python with the host's runtime versions.

The aarch64 environment is assembled from registry packages only: Debian's arm64 ``python3.11`` and the libraries
it links, unpacked with ``dpkg-deb -x`` into a root (never installed), and PyPI's aarch64 wheels of the *same
versions* of onnxruntime, ai-edge-litert, numpy and ml_dtypes that the host has, unpacked onto its path. QEMU's
``-L`` prefix makes the guest see the root's loader and libraries, and the root's ``proc/cpuinfo`` describes the
emulated CPU (QEMU 7.2 passes the host's x86 /proc/cpuinfo through, and both runtimes' CPU detection crashes on
it).

It lives in ``$POCKETBERT_KERNELS_DIR`` (default ``~/.cache/pocketbert/kernels``), in a directory named after
those versions; it is built aside and renamed into place when its smoke test passed, so setting up again is a
no-op and an interrupted set-up leaves nothing half-built behind. Installing ``qemu-user-static`` and adding the
arm64 architecture to dpkg need root (``apt-get``); running the families does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketbert.core.facts import runtime_version
from pocketbert.errors import PocketbertError

# what every guest needs besides the runtimes of the formats that run under emulation
BASE_MODULES = {"numpy": "numpy", "ml_dtypes": "ml_dtypes"}
ARM64_DEBS = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libcrypt1",
    "libuuid1",
    "libsqlite3-0",
    "libtinfo6",
    "libncursesw6",
    "libreadline8",
)
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64")
PYTHON = "usr/bin/python3.11"
READY = "ready.json"

# /proc/cpuinfo of a 2-core Cortex-A76, as Linux prints it
_CPUINFO_CORE = (
    "processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
)
_A76_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs"
)


def cache_root() -> Path:
    """Where kernel-family environments are kept."""
    configured = os.environ.get("POCKETBERT_KERNELS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "pocketbert" / "kernels"


def runtime_modules() -> dict[str, str]:
    """``{distribution: module to import}`` of what the aarch64 environment mirrors: numpy, ml_dtypes, and the
    runtime of every format that runs on the emulated aarch64 families (``Format.emulated_kernels`` without an
    ``aarch64`` entry in ``Format.emulation_gaps``)."""
    from pocketbert.formats import all_formats

    runtimes = {
        f.runtime: f.runtime_modules[0]
        for f in all_formats()
        if f.emulated_kernels and "aarch64" not in f.emulation_gaps
    }
    return {**BASE_MODULES, **runtimes}


def emulated_runtimes() -> tuple[str, ...]:
    """The runtime distributions of the formats that run under emulation (``onnxruntime``, ``ai-edge-litert``)."""
    return tuple(d for d in runtime_modules() if d not in BASE_MODULES)


def wanted_versions() -> dict[str, str]:
    """``{distribution: version}`` of the host's runtimes that the aarch64 environment mirrors."""
    versions = {d: runtime_version(d) for d in runtime_modules()}
    return {d: v for d, v in versions.items() if v}


def env_dir() -> Path:
    """The aarch64 environment for the host's current runtime versions."""
    versions = wanted_versions()
    key = json.dumps({"debs": ARM64_DEBS, "wheels": versions}, sort_keys=True)
    tag = "-".join(f"{d.replace('-', '')}{v}" for d, v in versions.items() if d in emulated_runtimes())
    return cache_root() / f"arm64-py311-{tag or 'numpy'}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def is_ready(path: Path) -> bool:
    """True when ``path`` is a complete environment (its smoke test passed)."""
    return (path / READY).is_file() and (path / PYTHON).is_file()


def site_dir(root: Path) -> Path:
    return root / "site"


def _run(cmd: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    except FileNotFoundError:
        raise PocketbertError(f"{what} needs {cmd[0]}, which is not installed") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise PocketbertError(f"{what} failed: {' '.join(cmd[:3])} …: {tail[-1] if tail else done.returncode}")
    return done


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PocketbertError(
            f"{what} needs root: run 'pocketbert kernels setup' as root once, or as root: apt-get install "
            "qemu-user-static && dpkg --add-architecture arm64 && apt-get update"
        )


def ensure_qemu(binary: str, say: Callable[[str], None]) -> None:
    """Install Debian's ``qemu-user-static`` if ``binary`` is not on PATH."""
    if shutil.which(binary):
        return
    if shutil.which("apt-get") is None:
        raise PocketbertError(f"{binary} is missing and this machine has no apt-get: install QEMU user-mode emulation")
    _need_root(f"installing {binary}")
    say("installing qemu-user-static (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "qemu-user-static"]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:  # stale package lists: update once
        _run(["apt-get", "update", "-q"], "apt-get update")
        _run(install, "apt-get install qemu-user-static", env=env)
    if not shutil.which(binary):
        raise PocketbertError(f"qemu-user-static is installed but {binary} is not on PATH")


def _ensure_arm64_lists(say: Callable[[str], None]) -> None:
    foreign = _run(["dpkg", "--print-foreign-architectures"], "dpkg").stdout.split()
    if "arm64" in foreign and _arm64_listed():
        return
    _need_root("adding the arm64 package lists")
    if "arm64" not in foreign:
        say("adding the arm64 architecture to dpkg")
        _run(["dpkg", "--add-architecture", "arm64"], "dpkg --add-architecture")
    say("apt-get update (arm64 package lists)")
    _run(["apt-get", "update", "-q"], "apt-get update")


def _arm64_listed() -> bool:
    done = subprocess.run(["apt-cache", "policy", "python3.11-minimal:arm64"], capture_output=True, text=True)
    return "Candidate:" in done.stdout and "(none)" not in done.stdout.split("Candidate:")[1].split("\n")[0]


def _download_debs(dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    os.chmod(dst, 0o777)  # apt's sandbox user writes here
    _run(["apt-get", "download", *[f"{p}:arm64" for p in ARM64_DEBS]], "apt-get download (arm64)", cwd=dst)
    return sorted(dst.glob("*.deb"))


def _download_wheels(dst: Path, versions: dict[str, str]) -> list[Path]:
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    pins = [f"{d}=={v}" for d, v in versions.items()]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.11", *platforms, "-d", str(dst), *pins]
    _run(cmd, "pip download (aarch64 wheels)")
    return sorted(dst.glob("*.whl"))


def write_cpuinfo(root: Path, cores: int = 2) -> Path:
    """``root/proc/cpuinfo`` of a Cortex-A76 phone CPU; returns its path.

    The runtimes' CPU detection reads the core's part number here and its instruction sets from the auxiliary
    vector (``HWCAP``), which QEMU fills from the ``-cpu`` model: one file serves every aarch64 family.
    """
    features = _A76_FEATURES
    path = root / "proc" / "cpuinfo"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_CPUINFO_CORE.format(i=i, features=features) for i in range(cores)))
    return path


def smoke_test(root: Path, cpu: str = "cortex-a76") -> dict[str, Any]:
    """Start the environment's Python under QEMU and import its runtimes; returns their versions."""
    code = (
        "import json, importlib, importlib.metadata as m, platform\n"
        f"names = {list(wanted_versions())!r}\n"
        f"mods = {runtime_modules()!r}\n"
        "for n in names: importlib.import_module(mods[n])\n"
        "print(json.dumps({'isa': platform.machine(), **{n: m.version(n) for n in names}}))\n"
    )
    qemu = shutil.which("qemu-aarch64-static") or "qemu-aarch64-static"
    cmd = [qemu, "-cpu", cpu, "-L", str(root), str(root / PYTHON), "-c", code]
    done = _run(cmd, "the aarch64 smoke test", env=guest_env(root), timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def guest_env(root: Path | None, extra_path: list[Path] | None = None) -> dict[str, str]:
    """Environment for a guest Python: the root's site directory (if any) and ``extra_path`` on its path, and none
    of the host's Python or loader variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LD_"))}
    paths = ([site_dir(root)] if root is not None else []) + list(extra_path or [])
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def setup_arm64(say: Callable[[str], None] = print) -> Path:
    """Build the aarch64 environment if it is not ready; returns its directory."""
    target = env_dir()
    if is_ready(target):
        say(f"arm64 environment ready: {target}")
        return target
    if platform.machine() not in ("x86_64", "AMD64", "aarch64"):
        raise PocketbertError(f"the arm64 environment is built on x86_64 or aarch64 hosts, not {platform.machine()}")
    versions = wanted_versions()
    if not any(d in versions for d in emulated_runtimes()):
        from pocketbert.formats import all_formats

        extras = " or ".join(f"pocketbert[{f.extra}]" for f in all_formats() if f.runtime in emulated_runtimes())
        raise PocketbertError(f"no runtime to mirror: install {extras} first")
    start = time.monotonic()
    ensure_qemu("qemu-aarch64-static", say)
    _ensure_arm64_lists(say)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        downloads = staging / "downloads"
        say(f"downloading {len(ARM64_DEBS)} Debian arm64 packages")
        debs = _download_debs(downloads / "debs")
        for deb in debs:
            _run(["dpkg-deb", "-x", str(deb), str(staging)], f"unpacking {deb.name}")
        say("downloading aarch64 wheels: " + ", ".join(f"{d}=={v}" for d, v in versions.items()))
        for wheel in _download_wheels(downloads / "wheels", versions):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site_dir(staging))
        write_cpuinfo(staging)
        shutil.rmtree(downloads)
        say("smoke test: importing the runtimes under qemu-aarch64 -cpu cortex-a76")
        seen = smoke_test(staging)
        wrong = {d: v for d, v in versions.items() if seen.get(d) != v}
        if wrong or seen.get("isa") != "aarch64":
            raise PocketbertError(f"the aarch64 environment reports {seen}, expected {versions}")
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file() and not p.is_symlink())
        record = {"versions": versions, "debs": list(ARM64_DEBS), "size_bytes": size}
        record["setup_seconds"] = round(time.monotonic() - start, 1)
        (staging / READY).write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():  # a concurrent set-up finished first
            shutil.rmtree(staging)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info = json.loads((target / READY).read_text())
    say(f"arm64 environment ready: {target} ({info['size_bytes'] / 1e6:.0f} MB, {info['setup_seconds']} s)")
    return target


def environment_info(path: Path) -> dict[str, Any] | None:
    """The ``ready.json`` record of an environment (versions, size, set-up time), or None."""
    try:
        return json.loads((path / READY).read_text())
    except (OSError, ValueError):
        return None


def setup_family(name: str, say: Callable[[str], None] = print) -> None:
    """Make kernel family ``name`` runnable here (QEMU, and the aarch64 environment where it needs one)."""
    from pocketbert.kernels.families import FAMILIES, missing

    family = FAMILIES[name]
    if not family.emulated:
        return
    if family.needs_arm64_env:
        setup_arm64(say)
    else:
        ensure_qemu(str(family.qemu), say)
    reason = missing(family)
    if reason:
        raise PocketbertError(reason)
