"""Filesystem helpers for writing outputs atomically, with the user's umask, in directories we can recognise."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from pocketbert import interrupts

ASIDE_KINDS: tuple[str, ...] = ("staging", "building", "bundle")


def user_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have: 0666 (files) or 0777 (dirs) minus the umask.

    ``tempfile`` creates files 0600 and directories 0700 whatever the umask; outputs must not stay private.
    """
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~user_umask())


def aside_dir(dest: Path, kind: str) -> Path:
    """A new empty directory beside ``dest`` (same filesystem) named ``.<dest>.<kind>-<pid>-<random>``.

    The pid in the name lets a later process holding the output's lock recognise and remove the directory when the
    process that made it is gone (see :func:`stale_aside_dirs`).
    """
    dest = Path(dest).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{kind}-{os.getpid()}-", dir=dest.parent))
    apply_umask(path)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_aside_dirs(dest: Path) -> list[Path]:
    """Directories :func:`aside_dir` (and :func:`swap_in`) made beside ``dest`` whose creating process is dead."""
    dest = Path(dest).absolute()
    if not dest.parent.is_dir():
        return []
    name = re.escape(dest.name)
    kinds = "|".join(ASIDE_KINDS)
    pattern = re.compile(rf"^\.{name}\.(?:old-\.{name}\.)?(?:{kinds})-(\d+)-[A-Za-z0-9_]+$")
    stale = []
    for entry in dest.parent.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(match.group(1))):
            stale.append(entry)
    return sorted(stale)


def rename_over(stage: Path, dest: Path) -> None:
    """Replace directory ``dest`` by ``stage`` with two renames on one filesystem (no signal handling).

    The old ``dest`` is moved aside first and deleted only after ``stage`` is in place; if the second rename fails,
    the old one is put back. Readers see either the old or the new directory, never a mix.
    """
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{stage.name}")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    try:
        stage.rename(dest)
    except OSError:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def swap_in(stage: Path, dest: Path) -> None:
    """:func:`rename_over`, unless SIGINT/SIGTERM arrived: a pending interrupt stops the job before the first
    rename, and one arriving during the renames waits until both are done."""
    with interrupts.deferred():
        interrupts.check()
        rename_over(stage, dest)
