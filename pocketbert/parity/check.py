"""``pocketbert parity OUT``: every artifact of an output directory against the PyTorch model, gated."""

from __future__ import annotations

from pathlib import Path

from pocketbert.errors import PocketbertError
from pocketbert.export.artifact import manifest_artifacts, read_manifest
from pocketbert.integrity import verify_output
from pocketbert.loading import LoadedModel, load_model
from pocketbert.parity.comparator import Comparator, ParityReport
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds, read_text_file
from pocketbert.parity.gates import gates_for, load_gate_file
from pocketbert.parity.runner import Runner, runner_for
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
) -> ParityReport:
    """Run every artifact in ``out_dir`` (or those named in ``only``) and the reference on the same feeds.

    The tokenizer files and every artifact checked are first verified against the manifest's sha256 (a mismatch
    is a one-line error). Feeds are the built-in texts plus the lines of ``texts_file``, truncated at the
    manifest's ``max_length``; gates are the defaults overridden by ``gates_file``.
    """
    manifest = read_manifest(out_dir)
    artifacts = manifest_artifacts(manifest)
    if only:
        known = {a.name for a in artifacts}
        missing = [n for n in only if n not in known]
        if missing:
            raise PocketbertError(f"no artifact named {', '.join(missing)} in {out_dir}; have: {', '.join(known)}")
        artifacts = [a for a in artifacts if a.name in only]
    verify_output(Path(out_dir), manifest, artifacts)
    loaded = loaded or load_reference(manifest, reference)
    texts = list(BUILTIN_TEXTS) + (read_text_file(texts_file, "texts file") if texts_file else [])
    feeds = build_feeds(loaded.tokenizer, texts, int(manifest["max_length"]))
    overrides = load_gate_file(gates_file) if gates_file else None
    runners: list[Runner] = [TorchRunner(loaded, REFERENCE_NAME)]
    for artifact in artifacts:
        runners.append(runner_for(artifact, Path(out_dir), threads))
    results = Comparator.run(runners, feeds)
    gates = {a.name: (a.precision, gates_for(a.name, a.precision, overrides)) for a in artifacts}
    verdicts = Comparator.compare_accuracy(results, REFERENCE_NAME, Task(manifest["model"]["task"]), feeds, gates)
    return ParityReport(
        reference=REFERENCE_NAME,
        task=manifest["model"]["task"],
        model=loaded.origin,
        num_feeds=len(feeds),
        num_sequences=sum(int(f["input_ids"].shape[0]) for f in feeds),
        artifacts=verdicts,
    )
