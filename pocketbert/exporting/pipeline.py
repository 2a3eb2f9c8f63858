"""``pocketbert export``: build artifacts of several formats and precisions into an output directory, atomically.

Artifacts are built in a staging directory beside ``OUT`` and moved in only when every one succeeded, so a failed
or interrupted export leaves ``OUT`` as it was. Exporting into an existing output of the same model adds or
replaces artifacts (the kept ones must share the max length and buckets); an output of another model, or a
directory that is not a pocketbert output, is refused unless ``force``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketbert import interrupts
from pocketbert.core.artifact import (
    MANIFEST_NAME,
    Artifact,
    ExportSettings,
    finalize,
    manifest_artifacts,
    write_json_atomic,
)
from pocketbert.errors import PocketbertError
from pocketbert.exporting.context import ExportContext
from pocketbert.exporting.manifest import TOKENIZER_DIR, build_manifest, model_section, write_tokenizer
from pocketbert.formats import get_format
from pocketbert.formats.base import FLOAT_PRECISIONS
from pocketbert.fsutil import aside_dir, rename_over, swap_in
from pocketbert.loading import LoadedModel
from pocketbert.outdir import check_kept, check_owner, check_target, claim, existing_manifest
from pocketbert.parity.data import read_text_file
from pocketbert.quantize.mixed import parse_budget

Progress = Callable[[str], None]


def validate_settings(settings: ExportSettings, loaded: LoadedModel) -> None:
    """One-line errors for settings the model cannot honour (see also :func:`validate_request`)."""
    validate_model_free(settings)
    buckets = settings.sequence_buckets
    if buckets[-1] > loaded.max_positions:
        raise PocketbertError(
            f"sequence bucket {buckets[-1]} is longer than the model's max positions ({loaded.max_positions})"
        )


def validate_model_free(settings: ExportSettings) -> None:
    """One-line errors for settings that are wrong whatever the model: buckets, max length, int8 scheme, the
    budget (also one that can never hold, such as a cosine above 1) and an unreadable calibration file."""
    buckets = settings.sequence_buckets
    if not buckets or any(b < 2 for b in buckets) or sorted(set(buckets)) != list(buckets):
        raise PocketbertError(f"sequence buckets must be ascending distinct lengths >= 2, got {buckets}")
    if settings.max_length != buckets[-1]:
        raise PocketbertError(
            f"max length {settings.max_length} must equal the largest bucket {buckets[-1]}; set both or one"
        )
    if settings.int8_budget is not None:
        for gate in parse_budget(settings.int8_budget):
            bounded = gate.metric.endswith(("cosine_min", "agreement", "spearman"))
            if bounded and gate.op == ">=" and gate.threshold > 1:
                raise PocketbertError(
                    f"budget {gate.metric}>={gate.threshold:g} can never hold (it is at most 1); loosen it"
                )
    if settings.int8_scheme not in ("dynamic", "static"):
        raise PocketbertError(f"unknown int8 scheme {settings.int8_scheme!r}; valid: dynamic, static")
    if settings.calibration_file:
        read_text_file(Path(settings.calibration_file), what="calibration file")


def validate_request(
    formats: list[str], precisions: list[str], settings: ExportSettings, *, skip_missing: bool = False
) -> list[tuple[str, str]]:
    """Check an export request before the model is loaded and return the (format, precision) pairs to build.

    ``skip_missing`` leaves out formats whose optional dependency is not installed (``pocketbert run`` skips them
    with a notice) instead of refusing them.
    """
    validate_model_free(settings)
    if skip_missing:
        formats = [fmt for fmt in formats if get_format(fmt).available()]
        if not formats:
            return []
    pairs = plan(formats, precisions)
    check_pairs(pairs, settings)
    return pairs


def plan(formats: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """(format, precision) pairs to build; every format must support every precision asked, except that ``fp32``
    and ``fp16`` fall back to the format's float precision (Core ML's float is fp16, ONNX's and TFLite's fp32)."""
    pairs = []
    for fmt in formats:
        exporter = get_format(fmt)
        exporter.check_available()
        for precision in precisions:
            if precision in exporter.precisions:
                pairs.append((fmt, precision))
            elif precision in FLOAT_PRECISIONS:
                continue
            else:
                exporter.check_precision(precision)
    if not pairs:
        raise PocketbertError(f"nothing to export for formats {formats} and precisions {precisions}")
    return pairs


def check_pairs(pairs: list[tuple[str, str]], settings: ExportSettings) -> None:
    """Each format's own checks of its settings for each precision (e.g. Core ML's deployment target), then the
    budget: a parity budget chooses which weights stay float; it applies to weight-only int8, not to the
    calibrated activation schemes, so asking for both is refused rather than silently ignored."""
    schemes = {}
    for fmt, precision in pairs:
        scheme = get_format(fmt).scheme_for(precision, settings)
        get_format(fmt).validate(precision, scheme, settings)
        schemes[(fmt, precision)] = scheme
    if settings.int8_budget is None:
        return
    static = [f"{fmt}-{precision}" for (fmt, precision), scheme in schemes.items() if scheme.calibrated]
    if static:
        raise PocketbertError(
            f"--budget applies to dynamic (weight-only) int8; {', '.join(static)} is static: drop one of the two"
        )


def _install(staging: Path, out_dir: Path, artifacts: list[Artifact], manifest: dict[str, Any]) -> None:
    """Move built artifacts and the tokenizer from ``staging`` into ``out_dir``, replacing older copies, then write
    the manifest; SIGINT/SIGTERM wait until all of it is in place."""
    moves = [Path(a.path).parent for a in artifacts] + [Path(TOKENIZER_DIR)]
    with interrupts.deferred():
        interrupts.check()
        for rel in moves:
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            rename_over(staging / rel, out_dir / rel)
        write_json_atomic(out_dir / MANIFEST_NAME, manifest)


def _kept(
    out_dir: Path, loaded: LoadedModel, settings: ExportSettings, pairs: list[tuple[str, str]], seed: int, force: bool
) -> list[Artifact] | None:
    """Artifacts of ``out_dir`` that stay beside this export, or ``None`` when the export replaces ``out_dir``."""
    if not check_owner(out_dir, model_section(loaded, seed), force):
        return None
    manifest = existing_manifest(out_dir) or {}
    rebuilt = {f"{fmt}-{precision}" for fmt, precision in pairs}
    keep = [a for a in manifest_artifacts(manifest) if a.name not in rebuilt]
    if (
        force
        and keep
        and (manifest.get("max_length"), manifest.get("sequence_buckets"))
        != (
            settings.max_length,
            list(settings.sequence_buckets),
        )
    ):
        return None
    check_kept(out_dir, manifest, keep, settings)
    return keep


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
    """Export ``loaded`` to every (format, precision) into ``out_dir`` and return the written manifest.

    ``out_dir`` is claimed with its lock (see :mod:`pocketbert.outdir`); artifacts of the same model built with the
    same max length and buckets stay, everything else is replaced as a whole, and only with ``force`` when it is
    another model's or not a pocketbert output.
    """
    settings = settings or ExportSettings()
    validate_settings(settings, loaded)
    out_dir = Path(out_dir)
    pairs = plan(formats, precisions)
    check_pairs(pairs, settings)
    check_target(out_dir, force)
    with claim(out_dir):
        keep = _kept(out_dir, loaded, settings, pairs, seed, force)
        staging = aside_dir(out_dir, "staging")
        try:
            ctx = ExportContext(loaded, settings, scratch=staging / ".scratch", progress=progress)
            built: list[Artifact] = []
            for fmt, precision in pairs:
                interrupts.check()
                if progress:
                    progress(f"exporting {fmt} {precision}")
                artifact = get_format(fmt).export(ctx, precision, staging)
                built.append(finalize(artifact, staging))
            shutil.rmtree(ctx.scratch, ignore_errors=True)
            tokenizer = write_tokenizer(loaded, staging)
            names = {a.name for a in built}
            artifacts = [a for a in keep or [] if a.name not in names] + built
            manifest = build_manifest(loaded, settings, tokenizer, artifacts, seed)
            if keep is None:  # nothing of out_dir stays: the staging dir becomes it
                write_json_atomic(staging / MANIFEST_NAME, manifest)
                swap_in(staging, out_dir.absolute())
            else:
                _install(staging, out_dir, built, manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return manifest
