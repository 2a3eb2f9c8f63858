"""``pocketbert bundle``: copy one verified artifact, the vocabulary and a bundle manifest into a sample app.

A bundle is ``<assets>/pocketbert/`` holding ``manifest.json`` (the export manifest with ``artifacts`` reduced to
the bundled one, ``tokenizer.files`` to the vocabulary, and a ``bundle`` section), ``tokenizer/vocab.txt`` and the
artifact's files under their export paths (e.g. ``tflite/int8/model.tflite``). The app reads nothing else.

Every bundle is built in a temporary directory beside its destination and swapped in with a rename, so a failure
leaves the previous bundle (or none) untouched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pocketbert import __version__
from pocketbert.core.artifact import MANIFEST_NAME, Artifact, manifest_artifacts, read_manifest
from pocketbert.core.artifact import write_json_atomic as _write_json
from pocketbert.core.integrity import file_sha256, verify_output
from pocketbert.errors import PocketbertError
from pocketbert.formats import all_formats
from pocketbert.fsutil import aside_dir, swap_in

BUNDLE_DIR = "pocketbert"


@dataclass(frozen=True)
class AppTarget:
    """A sample app: how to recognise it, where its bundle goes, which artifact formats it runs (preferred first)."""

    platform: str
    marker: str  # a file only this app has, relative to the app root
    marker_text: str  # text the marker file contains
    assets: str  # bundle parent directory, relative to the app root
    formats: tuple[str, ...]


def app_formats(platform: str) -> tuple[str, ...]:
    """The formats the ``platform`` sample app runs, in the order the bundler prefers them (each format's
    ``app_preference``)."""
    usable = [f for f in all_formats() if platform in f.platforms]
    return tuple(f.name for f in sorted(usable, key=lambda f: f.app_preference))


ANDROID = AppTarget(
    platform="android",
    marker="settings.gradle.kts",
    marker_text='rootProject.name = "PocketBert"',
    assets="app/src/main/assets",
    formats=app_formats("android"),
)
IOS = AppTarget(
    platform="ios",
    marker="PocketBertKit/Package.swift",
    marker_text='name: "PocketBertKit"',
    assets="PocketBertApp/Resources",
    formats=app_formats("ios"),
)
PRECISION_ORDER: tuple[str, ...] = ("int8", "fp16", "fp32")


@dataclass
class BundleResult:
    """What was bundled where."""

    platform: str
    directory: Path
    artifact: str
    files: list[str]
    size_bytes: int


def _precision_rank(precision: str) -> int:
    for rank, family in enumerate(PRECISION_ORDER):
        if precision.startswith(family):
            return rank
    return len(PRECISION_ORDER)


def choose_artifact(artifacts: list[Artifact], target: AppTarget, names: list[str] | None = None) -> Artifact:
    """The artifact ``target`` runs: the first of ``names`` it can run, else by format then int8 > fp16 > fp32."""
    usable = [a for a in artifacts if a.format in target.formats]
    if names:
        by_name = {a.name: a for a in artifacts}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            have = ", ".join(by_name) or "none"
            raise PocketbertError(f"no artifact {', '.join(unknown)} in the manifest (has {have})")
        chosen = [by_name[n] for n in names if by_name[n].format in target.formats]
        if not chosen:
            raise PocketbertError(
                f"--artifact {','.join(names)}: the {target.platform} app runs only "
                f"{'/'.join(target.formats)} artifacts"
            )
        return chosen[0]
    if not usable:
        formats = " or ".join(target.formats)
        raise PocketbertError(
            f"the output has no {formats} artifact for the {target.platform} app; "
            f"run 'pocketbert export --format {target.formats[0]}' first"
        )
    return min(usable, key=lambda a: (target.formats.index(a.format), _precision_rank(a.precision)))


def check_app(app_dir: Path, target: AppTarget) -> None:
    """Refuse a directory that is not pocketbert's sample app for ``target``."""
    marker = Path(app_dir) / target.marker
    if not marker.is_file() or target.marker_text not in marker.read_text(encoding="utf-8", errors="replace"):
        raise PocketbertError(
            f"{app_dir} is not pocketbert's {target.platform} sample app (no {target.marker}); "
            f"pass apps_sample/{target.platform}"
        )


def _ordered(files: list[str]) -> list[str]:
    """Files in the order ``sha256_of`` hashes them (sorted as paths), so apps can hash in listed order."""
    return [str(p) for p in sorted(PurePosixPath(f) for f in files)]


def _verify_source(out_dir: Path, manifest: dict[str, Any], artifact: Artifact) -> str:
    """Verify ``artifact`` and the vocabulary against the manifest's sha256; return the vocabulary's path."""
    vocab = manifest.get("tokenizer", {}).get("vocab")
    if not vocab:
        raise PocketbertError(f"{out_dir} has no tokenizer vocabulary; re-run 'pocketbert export'")
    verify_output(out_dir, manifest, [artifact], tokenizer_files=[vocab])
    return vocab


def bundle_manifest(manifest: dict[str, Any], artifact: Artifact, target: AppTarget, out_dir: Path) -> dict[str, Any]:
    """The manifest an app reads: the export manifest naming only ``artifact`` and the vocabulary."""
    data = dict(manifest)
    entry = artifact.to_dict()
    entry["files"] = _ordered(artifact.files)
    data["artifacts"] = [entry]
    tokenizer = dict(manifest["tokenizer"])
    tokenizer["files"] = [tokenizer["vocab"]]
    tokenizer["sha256"] = {tokenizer["vocab"]: manifest["tokenizer"]["sha256"][tokenizer["vocab"]]}
    data["tokenizer"] = tokenizer
    data["bundle"] = {
        "platform": target.platform,
        "artifact": artifact.name,
        "source": str(out_dir.resolve()),
        "pocketbert_version": __version__,
    }
    return data


def bundle_app(out_dir: Path, app_dir: Path, target: AppTarget, names: list[str] | None = None) -> BundleResult:
    """Bundle the right artifact of ``out_dir`` into the app at ``app_dir`` (see the module docstring)."""
    out_dir, app_dir = Path(out_dir), Path(app_dir)
    manifest = read_manifest(out_dir)
    check_app(app_dir, target)
    artifact = choose_artifact(manifest_artifacts(manifest), target, names)
    vocab = _verify_source(out_dir, manifest, artifact)

    parent = app_dir / target.assets
    stage = aside_dir(parent / BUNDLE_DIR, "bundle")
    try:
        for rel in [*artifact.files, vocab]:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out_dir / rel, stage / rel)
        copied = {rel: file_sha256(stage / rel) for rel in [*artifact.files, vocab]}
        if copied != {**artifact.file_sha256, vocab: manifest["tokenizer"]["sha256"][vocab]}:
            raise PocketbertError(f"copying {artifact.name} into {parent} changed it; check the disk and retry")
        _write_json(stage / MANIFEST_NAME, bundle_manifest(manifest, artifact, target, out_dir))
        swap_in(stage, parent / BUNDLE_DIR)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = sorted([MANIFEST_NAME, vocab, *artifact.files])
    return BundleResult(target.platform, parent / BUNDLE_DIR, artifact.name, files, artifact.size_bytes)


def bundle(
    out_dir: Path, android: Path | None = None, ios: Path | None = None, artifacts: list[str] | None = None
) -> list[BundleResult]:
    """Bundle ``out_dir`` into the Android and/or iOS sample app; every target is checked before any is written."""
    targets = [(path, target) for path, target in ((android, ANDROID), (ios, IOS)) if path is not None]
    if not targets:
        raise PocketbertError("nothing to do: pass --android apps_sample/android and/or --ios apps_sample/ios")
    manifest = read_manifest(Path(out_dir))
    for path, target in targets:  # refuse early, before writing anything anywhere
        check_app(path, target)
        _verify_source(Path(out_dir), manifest, choose_artifact(manifest_artifacts(manifest), target, artifacts))
    return [bundle_app(out_dir, path, target, artifacts) for path, target in targets]
