"""Picklable descriptions of the runners a benchmark measures, and how a worker rebuilds each one.

A spec crosses the process boundary (the worker rebuilds the runner in its own process), so it holds only strings
and numbers. Kinds:

* ``torch-hf``: a Hugging Face model in PyTorch fp32 through :class:`TorchRunner` (the BERT baseline, the student);
* ``torch-int8``: the student's :class:`DeploymentModel` with ``torch.ao`` dynamic int8 Linear layers, through
  :class:`WrapperRunner`;
* ``artifact``: an exported artifact of ``OUT/manifest.json`` in its own runtime, through :func:`runner_for`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError

BASELINE = "baseline"
STUDENT_FP32 = "pytorch-fp32"
STUDENT_INT8 = "pytorch-int8"


@dataclass(frozen=True)
class RunnerSpec:
    """How to rebuild one runner in a worker process.

    Attributes:
        name: row name in the report (``baseline``, ``pytorch-fp32``, ``pytorch-int8``, or an artifact name).
        kind: ``torch-hf``, ``torch-int8`` or ``artifact``.
        role: ``baseline`` or ``student``.
        runtime: ``pytorch``, ``onnxruntime``, ``litert`` or ``coreml``.
        precision: e.g. ``fp32``, ``int8``.
        source, task, num_labels, seed: arguments of :func:`pocketbert.loading.load_model` (torch kinds).
        out_dir, artifact, format: the output directory, artifact name and its format (artifact kind).
        tokenizer: the tokenizer given apart from the model at export (``--tokenizer``), else ``None``.
    """

    name: str
    kind: str
    role: str
    runtime: str
    precision: str
    source: str | None = None
    task: str | None = None
    num_labels: int | None = None
    seed: int = 0
    out_dir: str | None = None
    artifact: str | None = None
    format: str | None = None
    tokenizer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compressed_size(paths: list[Path]) -> int:
    """Bytes of ``paths`` after deflate (zlib level 6, as in a zip or an app-store download), streamed in 1 MiB."""
    total = 0
    for path in paths:
        packer = zlib.compressobj(6)
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                total += len(packer.compress(chunk))
        total += len(packer.flush())
    return total


def _sizes(paths: list[Path]) -> dict[str, int]:
    return {"size_bytes": sum(p.stat().st_size for p in paths), "compressed_bytes": compressed_size(paths)}


def _torch_sizes(module: Any) -> dict[str, int]:
    """Size of a module's ``torch.save``-d state dict (what an app would ship for PyTorch), and compressed."""
    import torch

    fd, tmp = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        torch.save(module.state_dict(), tmp)
        return _sizes([Path(tmp)])
    finally:
        Path(tmp).unlink(missing_ok=True)


def _model_info(loaded: Any) -> dict[str, Any]:
    from pocketbert.runtime_bench.roofline import encoder_shape

    return {
        "encoder": encoder_shape(loaded.model.config),
        "origin": loaded.origin,
        "task": loaded.task.value,
        "labels": list(loaded.labels),
        "max_positions": loaded.max_positions,
        "vocab_size": len(loaded.tokenizer.get_vocab()),
        "random_weights": loaded.source.startswith("random:"),
    }


def _build_torch(spec: RunnerSpec, threads: int) -> tuple[Runner, dict[str, Any]]:
    import torch

    from pocketbert.loading import load_model
    from pocketbert.parity.torch_runner import TorchRunner, WrapperRunner
    from pocketbert.wrapper import DeploymentModel

    torch.set_num_threads(threads)
    loaded = load_model(spec.source, spec.task, num_labels=spec.num_labels, seed=spec.seed, tokenizer=spec.tokenizer)
    info = _model_info(loaded)
    if spec.kind == "torch-hf":
        info.update(_torch_sizes(loaded.model))
        return TorchRunner(loaded, spec.name), info
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated but still the eager dynamic-int8 path
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        module = quantize_dynamic(DeploymentModel(loaded.model, loaded.task), {torch.nn.Linear}, dtype=torch.qint8)
        info.update(_torch_sizes(module))
    return WrapperRunner(module, spec.name), info


def _build_artifact(spec: RunnerSpec, threads: int) -> tuple[Runner, dict[str, Any]]:
    from pocketbert.core.artifact import manifest_artifacts, read_manifest
    from pocketbert.formats import runner_for

    out_dir = Path(spec.out_dir or ".")
    manifest = read_manifest(out_dir)
    found = [a for a in manifest_artifacts(manifest) if a.name == spec.artifact]
    if not found:
        raise PocketbertError(f"artifact {spec.artifact} is not in {out_dir / 'manifest.json'}")
    artifact = found[0]
    files = [out_dir / f for f in (artifact.files or [artifact.path])]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise PocketbertError(f"artifact {artifact.name} is missing {missing[0]}; re-run the export")
    runner = runner_for(artifact, out_dir, threads)
    model = manifest["model"]
    info = {
        "origin": model.get("origin"),
        "task": model.get("task"),
        "labels": list(model.get("labels") or []),
        "max_positions": model.get("max_positions"),
        "sequence_buckets": artifact.sequence_buckets,
        "scheme": artifact.scheme,
        "random_weights": str(model.get("source") or "").startswith("random:"),
        **_sizes([f for f in files if f.is_file()]),
    }
    return runner, info


def preimport(spec: RunnerSpec) -> None:
    """Import the runtime's Python modules, so load times measure loading the model, not importing libraries."""
    import importlib

    if spec.kind in ("torch-hf", "torch-int8"):
        for name in ("torch", "transformers", "pocketbert.loading", "pocketbert.wrapper"):
            importlib.import_module(name)
        return
    from pocketbert.formats import get_format

    if not spec.format:
        return
    for module in get_format(spec.format).runtime_modules:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # build_runner reports it as the runner's failure


def build_runner(spec: RunnerSpec, threads: int) -> tuple[Runner, dict[str, Any]]:
    """The runner described by ``spec`` with ``threads`` threads, and facts about it for the report.

    The info dict holds ``size_bytes`` / ``compressed_bytes`` (what would ship), ``max_positions``, ``task``,
    ``labels`` and, for static-shape artifacts, ``sequence_buckets``.
    """
    if spec.kind in ("torch-hf", "torch-int8"):
        return _build_torch(spec, threads)
    if spec.kind == "artifact":
        return _build_artifact(spec, threads)
    raise PocketbertError(f"unknown runner kind {spec.kind!r}")
