"""One rule for every command that writes an output directory ``OUT`` (``export`` and ``run``).

- :func:`check_target` (before any slow work): ``OUT`` must be a directory we can write (or creatable), must not
  be locked by another pocketbert process, and must be empty or a pocketbert output unless ``--force``.
- :func:`claim` holds ``OUT``'s lock for the whole job and removes staging/building directories left beside ``OUT``
  by dead pocketbert processes (recognised by name and the pid in it, never by a broad match).
- :func:`check_owner` (once the model is loaded): an ``OUT`` holding another model's artifacts is refused unless
  ``--force``.
- :func:`check_kept` : artifacts an export keeps must be intact and built with the same max length and buckets,
  so the manifest always describes exactly the files present.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import MANIFEST_NAME, Artifact, ExportSettings, read_manifest
from pocketbert.errors import PocketbertError
from pocketbert.fsutil import stale_aside_dirs
from pocketbert.run.lock import OutputLock


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def check_target(out_dir: Path, force: bool) -> None:
    """Refuse an ``OUT`` that is a file, unwritable, locked by another run, or a non-empty directory that is not a
    pocketbert output (unless ``force``); one line each, nothing written."""
    out_dir = Path(out_dir)
    parent = out_dir.absolute().parent
    existing = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if existing is None or not _writable_dir(existing):
        raise PocketbertError(f"cannot write {out_dir}: {existing} is not a writable directory; choose another -o")
    if out_dir.exists() and not out_dir.is_dir():
        raise PocketbertError(f"output {out_dir} exists and is not a directory; choose another -o")
    if out_dir.is_dir() and not _writable_dir(out_dir):
        raise PocketbertError(f"output {out_dir} is not writable; fix its permissions or choose another -o")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file() and not force:
        raise PocketbertError(f"output {out_dir} is not empty and not a pocketbert output; use --force or another -o")
    if parent.is_dir():
        with OutputLock(out_dir):  # refuses now, not after the model load, when another run holds it
            pass


@contextmanager
def claim(out_dir: Path) -> Iterator[OutputLock]:
    """Hold ``OUT``'s lock for the ``with`` body, after removing aside directories of dead pocketbert processes."""
    with OutputLock(out_dir) as lock:
        for stale in stale_aside_dirs(Path(out_dir)):
            shutil.rmtree(stale, ignore_errors=True)
        yield lock


def existing_manifest(out_dir: Path) -> dict[str, Any] | None:
    """``OUT``'s manifest, or ``None`` when ``OUT`` has none."""
    return read_manifest(out_dir) if (Path(out_dir) / MANIFEST_NAME).is_file() else None


def check_owner(out_dir: Path, model: dict[str, Any], force: bool) -> bool:
    """Whether ``OUT`` already holds outputs of ``model`` (a manifest ``model`` section); an ``OUT`` holding another
    model's is refused unless ``force``."""
    manifest = existing_manifest(out_dir)
    if manifest is None:
        return False
    same = manifest.get("model", {}) == model
    if not same and not force:
        other = manifest.get("model", {}).get("origin", "another model")
        raise PocketbertError(
            f"output {out_dir} holds artifacts of another model ({other}); use --force to replace them or another -o"
        )
    return same


def check_kept(out_dir: Path, manifest: dict[str, Any], kept: list[Artifact], settings: ExportSettings) -> None:
    """Artifacts that stay in ``OUT`` beside a new export must be intact and share its max length and buckets."""
    from pocketbert.core.integrity import verify_artifact

    if not kept:
        return
    old = (manifest.get("max_length"), manifest.get("sequence_buckets"))
    new = (settings.max_length, list(settings.sequence_buckets))
    if old != new:
        names = ", ".join(a.name for a in kept)
        raise PocketbertError(
            f"output {out_dir} keeps {names} built for max length {old[0]}, buckets {old[1]}; this export uses "
            f"{new[0]}, {new[1]}: export those too, use the same --buckets, or --force to replace the output"
        )
    for artifact in kept:
        verify_artifact(out_dir, manifest, artifact)
