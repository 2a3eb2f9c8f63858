"""The run configuration: a TOML file that mirrors the ``pocketbert run`` flags; flags override the file.

Example ``pocketbert.toml``::

    model = "./my-distilbert-sst2"
    output = "out/sst2"
    formats = ["onnx", "tflite", "coreml", "executorch"]
    precisions = ["fp32", "fp16", "int8"]
    buckets = [32, 64, 128]
    gates = "gates.toml"

    [bench]
    baseline = "random:bert-base-uncased"
    seq = [16, 32, 64, 128]
    threads = 2

With a ``[distill]`` table (the keys of :class:`pocketbert.distill.DistillConfig`, except ``output``, ``resume``
and ``force``, which the run sets) the run first distils a student from ``teacher`` into ``OUT/student`` and
continues with it as the model (so ``model`` must be unset); the teacher is the bench baseline unless
``[bench] baseline`` names another::

    [distill]
    teacher = "./my-bert-sst2"
    data = "train.jsonl"
    layers = 3
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pocketbert.distill.config import DistillConfig, apply_values
from pocketbert.distill.config import validate as validate_distill
from pocketbert.errors import PocketbertError
from pocketbert.exporting import options as export_options
from pocketbert.kernels.families import parse_kernels
from pocketbert.tomlfile import read_toml

STUDENT_DIR = "student"  # where a run with [distill] puts the student, inside OUT


@dataclass
class BenchConfig:
    """Latency harness settings (see ``pocketbert bench``)."""

    enabled: bool = True
    baseline: str | None = None  # None: bert-base-uncased when cached, else random:bert-base-uncased
    seq: list[int] | None = None  # None: the harness's lengths (16, 32 when quick)
    batch: int = 1
    threads: int = 2
    repeats: int | None = None  # None: the harness's default (fewer when quick)
    warmup: int | None = None
    quick: bool = True


@dataclass
class RunConfig:
    """Everything ``pocketbert run`` does, resolved from defaults, the TOML file and the flags (in that order).

    ``export`` holds the export options by key (the table of :mod:`pocketbert.exporting.options`: ``formats``,
    ``precisions``, ``buckets``, ``budget``, each format's own such as ``coreml_target``), also readable as
    attributes (``config.formats``).
    """

    model: str | None = None
    task: str | None = None
    num_labels: int | None = None
    seed: int = 0
    tokenizer: str | None = None
    output: str = "out/default"
    export: dict[str, Any] = field(default_factory=export_options.defaults)
    gates: str | None = None
    kernels: list[str] = field(default_factory=lambda: ["host"])
    texts: str | None = None
    force: bool = False
    bench: BenchConfig = field(default_factory=BenchConfig)
    distill: DistillConfig | None = None  # None: no [distill] table, the model is given

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("export", {})
        if name in options:
            return options[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """Flat, as the TOML file is written: model keys, export options, then the rest, ``bench`` and ``distill``
        (``None`` without a ``[distill]`` table; else its keys, without the ones the run sets)."""
        data = asdict(self)
        tail = ("gates", "kernels", "texts", "force", "bench", "distill")
        flat = {k: v for k, v in data.items() if k not in ("export", *tail)}
        flat.update(data["export"])
        flat.update({k: data[k] for k in tail})
        if flat["distill"] is not None:
            flat["distill"] = {k: v for k, v in flat["distill"].items() if k not in RUN_SETS_DISTILL}
        return flat


# [distill] keys that ``pocketbert run`` sets itself, with what it sets them to.
RUN_SETS_DISTILL: dict[str, str] = {
    "output": "the student is written to OUT/student",
    "resume": "a run resumes an interrupted distillation of the same settings by itself",
    "force": "the run's own force applies",
}


def _expected(cls: type, name: str) -> str:
    return next(str(f.type) for f in fields(cls) if f.name == name)


def _check_value(cls: type, key: str, value: Any, where: str) -> Any:
    kind = _expected(cls, key)
    ok = {
        "str | None": isinstance(value, str),
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "int | None": isinstance(value, int) and not isinstance(value, bool),
        "list[int] | None": isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        "bool": isinstance(value, bool),
        "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "list[int]": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }.get(kind, True)
    if not ok:
        raise PocketbertError(f"config key {where}{key} must be {kind.replace(' | None', '')}, got {value!r}")
    return value


def _valid_keys(target: Any) -> list[str]:
    if not isinstance(target, RunConfig):
        return [f.name for f in fields(target)]
    return [k for k in RunConfig().to_dict() if k not in ("bench", "distill")]


def _apply_distill(config: RunConfig, table: Any) -> None:
    """Set the ``[distill]`` table's values on ``config.distill`` (created on first use) with one-line errors."""
    if not isinstance(table, dict):
        raise PocketbertError("config key distill must be a table: [distill]")
    for key in table:
        if key in RUN_SETS_DISTILL:
            raise PocketbertError(f"config key distill.{key} is set by pocketbert run ({RUN_SETS_DISTILL[key]})")
    config.distill = config.distill or DistillConfig()
    apply_values(config.distill, table, "config key distill.", exclude=tuple(RUN_SETS_DISTILL))


def _apply(target: Any, values: dict[str, Any], where: str) -> None:
    valid = _valid_keys(target)
    options = {o.key: o for o in export_options.export_options()}
    for key, value in values.items():
        if key == "bench" and isinstance(target, RunConfig):
            if not isinstance(value, dict):
                raise PocketbertError("config key bench must be a table: [bench]")
            _apply(target.bench, value, "bench.")
            continue
        if key == "distill" and isinstance(target, RunConfig):
            _apply_distill(target, value)
            continue
        if isinstance(target, RunConfig) and key in options:
            target.export[key] = options[key].check(value, where)
            continue
        if key not in valid:
            extra = ", [bench], [distill]" if isinstance(target, RunConfig) else ""
            raise PocketbertError(f"unknown config key {where}{key!r}; valid: {', '.join(valid)}{extra}")
        setattr(target, key, _check_value(type(target), key, value, where))


def load_config(path: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults, then the TOML file at ``path`` (if any), then ``overrides`` (flags that were given; ``bench``
    and ``distill`` overrides are nested dicts, merged into the file's tables)."""
    config = RunConfig()
    if path is not None:
        _apply(config, read_toml(path, "config file"), "")
    _apply(config, overrides, "")
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    """Cross-field checks with one-line errors."""
    export_options.check(config.export)
    parse_kernels(config.kernels)
    if config.bench.threads < 1:
        raise PocketbertError(f"bench threads must be at least 1, got {config.bench.threads}")
    if config.bench.batch < 1 or (config.bench.repeats or 1) < 1 or (config.bench.warmup or 0) < 0:
        raise PocketbertError("bench batch and repeats must be at least 1, warmup at least 0")
    if config.distill is not None:
        validate_distill(config.distill)
        if config.model:
            raise PocketbertError(
                f"model {config.model!r} and a [distill] table both name the model: [distill] makes the student "
                "from distill.teacher; remove one"
            )
        if not config.distill.data:
            raise PocketbertError("[distill] needs data = FILE (training texts: .txt, .jsonl or .csv)")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def to_toml(config: RunConfig) -> str:
    """The resolved configuration as TOML (unset optional values are shown as comments)."""
    lines = []
    data = config.to_dict()
    bench, distill = data.pop("bench"), data.pop("distill")
    sections = [("", data), ("[bench]", bench)] + ([("[distill]", distill)] if distill is not None else [])
    for section, values in sections:
        if section:
            lines += ["", section]
        if section == "[distill]":
            lines.append(f"# the student: {Path(config.output) / STUDENT_DIR} (set by pocketbert run)")
        for key, value in values.items():
            lines.append(f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
