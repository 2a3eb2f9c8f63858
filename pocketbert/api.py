"""The public Python API: three calls over the same machinery the command line uses.

    import pocketbert

    manifest = pocketbert.export("./my-distilbert", "out/sst2", formats=["tflite", "executorch"], precisions=["int8"])
    report = pocketbert.check_parity("out/sst2")          # a ParityReport; report.passed
    results = pocketbert.bench("out/sst2", baseline="random:bert-base-uncased", seqs=[32, 128])

Every option of ``pocketbert export`` is a keyword (``buckets``, ``budget``, ``int8_scheme``, ``calibration`` and
each format's own, such as ``coreml_target`` or ``onnx_int8_weights``), checked by the same option table before
any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketbert.exporting.options import settings_from
from pocketbert.loading import LoadedModel, load_model
from pocketbert.tasks import Task


def export(
    model: str | LoadedModel | None,
    out_dir: str | Path,
    *,
    formats: list[str] | None = None,
    precisions: list[str] | None = None,
    task: Task | str | None = None,
    num_labels: int | None = None,
    tokenizer: str | None = None,
    seed: int = 0,
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Export ``model`` to every format and precision into ``out_dir`` and return the written manifest.

    Args:
        model: a hub id, a ``save_pretrained`` directory, ``random:<preset>``, ``None`` (the embedded
            all-MiniLM-L6-v2), or a :class:`LoadedModel` already loaded.
        out_dir: the output directory (built aside and moved in when every artifact succeeded).
        formats: format names (default: every format; one whose extra is not installed is a one-line error).
        precisions: ``fp32``, ``fp16``, ``int8`` and the formats' own (default ``fp32, fp16, int8``).
        task, num_labels, tokenizer, seed: as for :func:`pocketbert.loading.load_model` (ignored for a
            :class:`LoadedModel`).
        force: replace an ``out_dir`` that holds another model's output or something else.
        options: export options by key (``buckets=[32, 128]``, ``budget="cosine>=0.995"``,
            ``coreml_target="iOS17"``, ...); an unknown key is an error.
    """
    from pocketbert.core.options import table
    from pocketbert.errors import PocketbertError
    from pocketbert.exporting.options import export_options
    from pocketbert.exporting.pipeline import export_model, validate_request
    from pocketbert.formats import format_names

    known = table(export_options())
    unknown = [key for key in options if key not in known or key in ("formats", "precisions")]
    if unknown:
        valid = ", ".join(k for k in known if k not in ("formats", "precisions"))
        raise PocketbertError(f"unknown export option {unknown[0]!r}; valid: {valid}")
    values = {**options, "formats": list(formats or format_names())}
    if precisions is not None:
        values["precisions"] = list(precisions)
    settings = settings_from(values)
    chosen = values.get("precisions") or known["precisions"].default
    validate_request(values["formats"], list(chosen), settings)
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, task, num_labels=num_labels, seed=seed, tokenizer=tokenizer)
    )
    return export_model(loaded, values["formats"], list(chosen), Path(out_dir), settings, seed=seed, force=force)


def check_parity(
    out_dir: str | Path,
    *,
    reference: str | None = None,
    texts: str | Path | None = None,
    gates: str | Path | None = None,
    only: list[str] | None = None,
    kernels: list[str] | None = None,
    threads: int | None = None,
) -> Any:
    """Run every artifact of ``out_dir`` and the PyTorch reference on the same feeds and return the
    :class:`pocketbert.parity.report.ParityReport` (``.passed``, ``.artifacts``, ``.to_dict()``).

    ``texts``: extra texts, one per line; ``gates``: a TOML file of gate overrides; ``only``: artifact names;
    ``kernels``: CPU kernel families (``host``, ``arm64``, ``arm64-i8mm``, ``x86-avx2``).
    """
    from pocketbert.parity.check import check_parity as run

    return run(
        Path(out_dir),
        reference=reference,
        texts_file=Path(texts) if texts else None,
        gates_file=Path(gates) if gates else None,
        only=only,
        threads=threads,
        kernels=kernels,
    )


def bench(
    out_dir: str | Path,
    *,
    baseline: str | None = None,
    seqs: list[int] | None = None,
    batch: int = 1,
    threads: int | None = None,
    repeats: int | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Time every artifact of ``out_dir``, the student in PyTorch and the ``baseline`` (full BERT; default
    ``bert-base-uncased`` when cached, else random weights) in one interleaved run, and return the bench report
    (``docs/bench.md``: medians, spread and ratios per sequence length in tokens, batch and threads)."""
    from pocketbert.run.job import resolve_baseline
    from pocketbert.runtime_bench.bench import BenchConfig, run_bench

    config = BenchConfig(
        Path(out_dir),
        baseline=resolve_baseline(baseline),
        seqs=seqs,
        batch=batch,
        threads=threads,
        repeats=repeats,
        quick=quick,
    )
    return run_bench(config)
