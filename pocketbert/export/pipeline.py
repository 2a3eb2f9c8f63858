"""``pocketbert export``: build artifacts of several formats and precisions into an output directory, atomically.

Artifacts are built in a staging directory beside ``OUT`` and moved in only when every one succeeded, so a failed
export leaves ``OUT`` as it was. Exporting into an existing output of the same model adds or replaces artifacts;
an output of another model, or a directory that is not a pocketbert output, is refused unless ``force``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.export.artifact import (
    MANIFEST_NAME,
    Artifact,
    ExportSettings,
    finalize,
    manifest_artifacts,
    read_manifest,
    write_json_atomic,
)
from pocketbert.export.base import ExportContext, get_exporter, int8_scheme
from pocketbert.export.manifest import TOKENIZER_DIR, build_manifest, model_section, write_tokenizer
from pocketbert.fsutil import swap_in
from pocketbert.loading import LoadedModel
from pocketbert.quantize.mixed import parse_budget

Progress = Callable[[str], None]


def validate_settings(settings: ExportSettings, loaded: LoadedModel) -> None:
    """One-line errors for settings the model cannot honour."""
    buckets = settings.sequence_buckets
    if not buckets or any(b < 2 for b in buckets) or sorted(set(buckets)) != list(buckets):
        raise PocketbertError(f"sequence buckets must be ascending distinct lengths >= 2, got {buckets}")
    if buckets[-1] > loaded.max_positions:
        raise PocketbertError(
            f"sequence bucket {buckets[-1]} is longer than the model's max positions ({loaded.max_positions})"
        )
    if settings.max_length != buckets[-1]:
        raise PocketbertError(
            f"max length {settings.max_length} must equal the largest bucket {buckets[-1]}; set both or one"
        )
    if settings.int8_budget is not None:
        parse_budget(settings.int8_budget)
    if settings.int8_scheme not in ("dynamic", "static"):
        raise PocketbertError(f"unknown int8 scheme {settings.int8_scheme!r}; valid: dynamic, static")


def plan(formats: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """(format, precision) pairs to build; every format must support every precision asked, except that ``fp32``
    and ``fp16`` fall back to the format's float precision (Core ML's float is fp16, ONNX's and TFLite's fp32)."""
    pairs = []
    for fmt in formats:
        exporter = get_exporter(fmt)
        exporter.check_available()
        for precision in precisions:
            if precision in exporter.precisions:
                pairs.append((fmt, precision))
            elif precision in ("fp32", "fp16"):
                continue
            else:
                exporter.check_precision(precision)
    if not pairs:
        raise PocketbertError(f"nothing to export for formats {formats} and precisions {precisions}")
    return pairs


def check_budget_schemes(pairs: list[tuple[str, str]], settings: ExportSettings) -> None:
    """A parity budget chooses which weights stay float; it applies to weight-only (dynamic) int8, not to the
    calibrated activation schemes, so asking for both is refused rather than silently ignored."""
    if settings.int8_budget is None:
        return
    static = [
        f"{fmt}-{precision}"
        for fmt, precision in pairs
        if precision.startswith("int8") and int8_scheme(precision, settings) in ("static", "w8a8")
    ]
    if static:
        raise PocketbertError(
            f"--budget applies to dynamic (weight-only) int8; {', '.join(static)} is static: drop one of the two"
        )


def _check_target(out_dir: Path, loaded: LoadedModel, seed: int, force: bool) -> list[Artifact]:
    """Artifacts already in ``out_dir`` that stay (same model), or an error when ``out_dir`` belongs to another."""
    if not out_dir.exists():
        return []
    if not out_dir.is_dir():
        raise PocketbertError(f"output {out_dir} exists and is not a directory")
    if not (out_dir / MANIFEST_NAME).is_file():
        if any(out_dir.iterdir()) and not force:
            raise PocketbertError(
                f"output {out_dir} is not empty and not a pocketbert output; use --force or another -o"
            )
        return []
    manifest = read_manifest(out_dir)
    same = manifest.get("model", {}) == model_section(loaded, seed)
    if not same and not force:
        raise PocketbertError(f"output {out_dir} holds artifacts of another model; use --force or another -o")
    return manifest_artifacts(manifest) if same else []


def _install(staging: Path, out_dir: Path, artifacts: list[Artifact]) -> None:
    """Move built artifacts and the tokenizer from ``staging`` into ``out_dir``, replacing older copies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    moves = [Path(a.path).parent for a in artifacts] + [Path(TOKENIZER_DIR)]
    for rel in moves:
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        swap_in(staging / rel, out_dir / rel)


def export_model(
    loaded: LoadedModel,
    formats: list[str],
    precisions: list[str],
    out_dir: Path,
    settings: ExportSettings | None = None,
    *,
    seed: int = 0,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Export ``loaded`` to every (format, precision) into ``out_dir`` and return the written manifest."""
    settings = settings or ExportSettings()
    validate_settings(settings, loaded)
    out_dir = Path(out_dir)
    pairs = plan(formats, precisions)
    check_budget_schemes(pairs, settings)
    keep = _check_target(out_dir, loaded, seed, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        ctx = ExportContext(loaded, settings, scratch=staging / ".scratch", progress=progress)
        built: list[Artifact] = []
        for fmt, precision in pairs:
            if progress:
                progress(f"exporting {fmt} {precision}")
            artifact = get_exporter(fmt).export(ctx, precision, staging)
            built.append(finalize(artifact, staging))
        shutil.rmtree(ctx.scratch, ignore_errors=True)
        tokenizer = write_tokenizer(loaded, staging)
        if force and out_dir.exists() and not keep:
            shutil.rmtree(out_dir)
        _install(staging, out_dir, built)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    names = {a.name for a in built}
    artifacts = [a for a in keep if a.name not in names] + built
    manifest = build_manifest(loaded, settings, tokenizer, artifacts, seed)
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    return manifest
