"""Checksums of every file a user or an app consumes from an output directory, and their verification before use.

The manifest records a sha256 per file: ``artifacts[*].file_sha256`` (plus ``sha256``, all of an artifact's files
hashed in sorted path order, which the apps check) and ``tokenizer.sha256`` (tokenizer files and the vocabulary).
``parity``, ``bench``, ``diagnose`` and ``bundle`` call :func:`verify_output` first and refuse a mismatch with one
line naming the file and the command that rebuilds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pocketbert.core.artifact import MANIFEST_NAME, Artifact, sha256_of
from pocketbert.errors import PocketbertError


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digests(root: Path, files: Iterable[str]) -> dict[str, str]:
    """``{relative path: hex sha256}`` for ``files`` below ``root``, in sorted path order."""
    return {rel: file_sha256(Path(root) / rel) for rel in sorted(files)}


def rebuild_command(manifest: dict[str, Any], out_dir: Path, artifact: Artifact | None = None) -> str:
    """The ``pocketbert export`` command line that rebuilds ``artifact`` (or the tokenizer files) in ``out_dir``."""
    model = manifest.get("model", {})
    parts = ["pocketbert export"]
    if model.get("source"):
        parts.append(str(model["source"]))
    if model.get("seed"):
        parts.append(f"--seed {model['seed']}")
    if artifact is not None:
        parts.append(f"--format {artifact.format} --precision {artifact.precision}")
    parts.append(f"-o {out_dir}")
    return " ".join(parts)


def _check_files(out_dir: Path, expected: dict[str, str], what: str, rebuild: str) -> None:
    for rel, digest in expected.items():
        path = Path(out_dir) / rel
        if not path.is_file():
            raise PocketbertError(f"{path} ({what}) is missing; rebuild it with: {rebuild}")
        if file_sha256(path) != digest:
            raise PocketbertError(
                f"{path} ({what}) does not match its sha256 in {MANIFEST_NAME} (changed after export); "
                f"rebuild it with: {rebuild}"
            )


def verify_artifact(out_dir: Path, manifest: dict[str, Any], artifact: Artifact) -> None:
    """Every file of ``artifact`` exists and matches its per-file and combined sha256, or a one-line error."""
    rebuild = rebuild_command(manifest, out_dir, artifact)
    expected = artifact.file_sha256
    if sorted(expected) != sorted(artifact.files):
        raise PocketbertError(
            f"{MANIFEST_NAME} in {out_dir} has no sha256 for every file of {artifact.name}; rebuild it with: {rebuild}"
        )
    _check_files(out_dir, expected, artifact.name, rebuild)
    if sha256_of([Path(out_dir) / f for f in artifact.files]) != artifact.sha256:
        raise PocketbertError(
            f"{artifact.name} in {out_dir} does not match the sha256 recorded in {MANIFEST_NAME}; "
            f"rebuild it with: {rebuild}"
        )


def verify_tokenizer(out_dir: Path, manifest: dict[str, Any], files: list[str] | None = None) -> None:
    """The tokenizer files (or just ``files`` of them) exist and match their sha256, or a one-line error."""
    tokenizer = manifest.get("tokenizer", {})
    recorded: dict[str, str] = tokenizer.get("sha256") or {}
    wanted = files if files is not None else sorted({*tokenizer.get("files", []), tokenizer.get("vocab", "")} - {""})
    rebuild = rebuild_command(manifest, out_dir)
    unrecorded = [rel for rel in wanted if rel not in recorded]
    if unrecorded or not wanted:
        rel = unrecorded[0] if unrecorded else "the tokenizer"
        raise PocketbertError(f"{MANIFEST_NAME} in {out_dir} has no sha256 for {rel}; rebuild it with: {rebuild}")
    _check_files(out_dir, {rel: recorded[rel] for rel in wanted}, "tokenizer", rebuild)


def verify_output(
    out_dir: Path, manifest: dict[str, Any], artifacts: list[Artifact], *, tokenizer_files: list[str] | None = None
) -> None:
    """Verify the tokenizer files (``tokenizer_files``, default all) and every one of ``artifacts`` before use."""
    verify_tokenizer(out_dir, manifest, tokenizer_files)
    for artifact in artifacts:
        verify_artifact(out_dir, manifest, artifact)
