"""``pocketbert parity OUT``: every artifact of an output directory against the PyTorch model, gated."""

from __future__ import annotations

import sys
from pathlib import Path

from pocketbert.core.artifact import Artifact, manifest_artifacts, read_manifest
from pocketbert.core.integrity import verify_output
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.formats import format_of, runner_for
from pocketbert.kernels.families import FAMILIES, HOST, missing, parse_kernels
from pocketbert.loading import LoadedModel, load_model
from pocketbert.parity.comparator import Comparator, ParityReport
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds, read_text_file
from pocketbert.parity.gates import gates_for, load_gate_file
from pocketbert.parity.torch_runner import TorchRunner
from pocketbert.tasks import Task

REFERENCE_NAME = "pytorch"


def load_reference(manifest: dict, reference: str | None = None) -> LoadedModel:
    """The model the manifest was exported from (or ``reference`` instead), with the manifest's task."""
    model = manifest["model"]
    source = reference if reference is not None else model.get("source") or None
    tokenizer = model.get("tokenizer") if reference is None else None
    num_labels, seed = model.get("num_labels"), model.get("seed", 0)
    return load_model(source, model["task"], num_labels=num_labels, seed=seed, tokenizer=tokenizer)


def artifact_names(out_dir: Path) -> list[str]:
    """Names of the artifacts in ``out_dir``'s manifest, in manifest order."""
    return [a.name for a in manifest_artifacts(read_manifest(out_dir))]


def check_parity(
    out_dir: Path,
    *,
    reference: str | None = None,
    texts_file: Path | None = None,
    gates_file: Path | None = None,
    only: list[str] | None = None,
    threads: int | None = None,
    loaded: LoadedModel | None = None,
    kernels: list[str] | str | None = None,
) -> ParityReport:
    """Run every artifact in ``out_dir`` (or those named in ``only``) and the reference on the same feeds.

    The tokenizer files and every artifact checked are first verified against the manifest's sha256 (a mismatch
    is a one-line error). Feeds are the built-in texts plus the lines of ``texts_file``, truncated at the
    manifest's ``max_length``; gates are the defaults overridden by ``gates_file``. ``kernels`` are the kernel
    families to run the artifacts on (default ``host``; see :mod:`pocketbert.kernels`): ONNX and TFLite artifacts
    run on each, the PyTorch reference always on the host; Core ML runs once, in its own runner. A family that
    cannot run here is refused before any model is loaded.
    """
    families = check_kernels(kernels)
    manifest = read_manifest(out_dir)
    artifacts = manifest_artifacts(manifest)
    if only:
        known = {a.name for a in artifacts}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise PocketbertError(f"no artifact named {', '.join(unknown)} in {out_dir}; have: {', '.join(known)}")
        artifacts = [a for a in artifacts if a.name in only]
    verify_output(Path(out_dir), manifest, artifacts)
    loaded = loaded or load_reference(manifest, reference)
    texts = list(BUILTIN_TEXTS) + (read_text_file(texts_file, "texts file") if texts_file else [])
    feeds = build_feeds(loaded.tokenizer, texts, int(manifest["max_length"]))
    overrides = load_gate_file(gates_file) if gates_file else None
    runners: list[Runner] = [TorchRunner(loaded, REFERENCE_NAME)]
    of_artifact: dict[str, Artifact] = {}
    for artifact, family in artifact_runs(artifacts, families):
        runner = family_runner(artifact, Path(out_dir), family, threads)
        runners.append(runner)
        of_artifact[runner.name] = artifact
    results = Comparator.run(runners, feeds)
    gates = {r: (a.precision, gates_for(a.name, a.precision, overrides)) for r, a in of_artifact.items()}
    names = {r: a.name for r, a in of_artifact.items()}
    task = Task(manifest["model"]["task"])
    verdicts = Comparator.compare_accuracy(results, REFERENCE_NAME, task, feeds, gates, artifact_names=names)
    return ParityReport(
        reference=REFERENCE_NAME,
        task=manifest["model"]["task"],
        model=loaded.origin,
        num_feeds=len(feeds),
        num_sequences=sum(int(f["input_ids"].shape[0]) for f in feeds),
        artifacts=verdicts,
        kernels=families,
        not_run=not_run(artifacts, families),
    )


def check_kernels(kernels: list[str] | str | None, setup: bool = True) -> list[str]:
    """Parsed kernel family names, each able to run here.

    A family that is not set up yet is set up first (:func:`pocketbert.kernels.provision.setup_family`, progress
    on stderr) when ``setup``; one that cannot be is one line naming what is missing.
    """
    from pocketbert.kernels.provision import setup_family

    families = parse_kernels(kernels)
    for name in families:
        reason = missing(FAMILIES[name])
        if reason and setup:
            try:
                setup_family(name, say=lambda message: print(f"kernels: {message}", file=sys.stderr))
            except PocketbertError as exc:
                raise PocketbertError(f"kernel family {name} cannot be set up here: {exc}") from None
        elif reason:
            raise PocketbertError(reason)
    return families


def artifact_runs(artifacts: list[Artifact], families: list[str]) -> list[tuple[Artifact, str]]:
    """``(artifact, family)`` pairs to run: emulatable formats on every family that takes them, the others once on
    the host (see :func:`not_run` for the pairs left out and why)."""
    runs = [(a, f) for f in families for a in artifacts if f == HOST or (_emulated(a) and not declines(a, f))]
    once = [(a, HOST) for a in artifacts if not _emulated(a) and HOST not in families]
    return runs + once


def _emulated(artifact: Artifact) -> bool:
    """True when ``artifact``'s runtime runs under the emulated kernel families."""
    return format_of(artifact).emulated_kernels


def declines(artifact: Artifact, family: str) -> tuple[str, str] | None:
    """``(short label, reason)`` when emulated ``family`` does not run ``artifact`` (its format has no runtime for
    the family's ISA, or the family does not take its precision), else None."""
    kind = FAMILIES[family]
    gap = format_of(artifact).emulation_gaps.get(str(kind.isa)) if kind.emulated else None
    if gap:
        return f"no {kind.isa} runtime", gap
    reason = kind.declines(artifact.precision)
    return ("int8 only", reason) if reason else None


def not_run(artifacts: list[Artifact], families: list[str]) -> list[dict[str, str]]:
    """The emulatable ``(artifact, family)`` pairs a family declines: ``artifact``, ``family``, ``reason`` and the
    matrix cell's short ``label``."""
    return [
        {"artifact": a.name, "family": f, "reason": why[1], "label": why[0]}
        for f in families
        for a in artifacts
        if _emulated(a) and (why := declines(a, f))
    ]


def family_runner(artifact: Artifact, out_dir: Path, family: str, threads: int | None = None) -> Runner:
    """The runner of ``artifact`` on kernel ``family``."""
    if family == HOST or not _emulated(artifact):
        return runner_for(artifact, out_dir, threads)
    from pocketbert.kernels.remote import EmulatedRunner

    if not (Path(out_dir) / artifact.path).exists():  # the same missing-file error as on the host
        runner_for(artifact, out_dir, threads)
    return EmulatedRunner(artifact, out_dir, FAMILIES[family], threads)
