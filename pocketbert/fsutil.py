"""Filesystem helpers for writing outputs atomically."""

from __future__ import annotations

import shutil
from pathlib import Path


def swap_in(stage: Path, dest: Path) -> None:
    """Replace directory ``dest`` by ``stage`` with two renames on one filesystem.

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
