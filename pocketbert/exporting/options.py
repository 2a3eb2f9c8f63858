"""The export option table: the shared options, then every format's own (:attr:`Format.options`), in one list
that makes the ``export`` and ``run`` flags, the run-config keys and their overrides, and the
:class:`ExportSettings` of both commands (:func:`settings_from`)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from pocketbert.core.artifact import DEFAULT_BUCKETS, ExportSettings
from pocketbert.core.options import Option, table
from pocketbert.errors import PocketbertError
from pocketbert.formats import all_formats, format_names

DEFAULT_PRECISIONS = ["fp32", "fp16", "int8"]

SHARED: tuple[Option, ...] = (
    Option(
        "formats",
        "str-list",
        None,
        "formats, comma list (export: onnx; run: every format)",
        flag_name="format",
        metavar="FORMATS",
    ),
    Option(
        "precisions",
        "str-list",
        DEFAULT_PRECISIONS,
        "fp32,fp16,int8 (comma list; int8-dynamic, int8-static and a format's own, e.g. int8-w8a8, too)",
        flag_name="precision",
        metavar="PRECISIONS",
    ),
    Option(
        "int8_scheme",
        "str",
        "dynamic",
        "what precision int8 means: dynamic (int8 weights) or static (also calibrated int8 activations)",
        choices=("dynamic", "static"),
        setting="int8_scheme",
    ),
    Option(
        "calibration",
        "path",
        None,
        "texts for static int8 and the budget, one per line",
        setting="calibration_file",
        metavar="FILE",
    ),
    Option(
        "buckets",
        "int-list",
        list(DEFAULT_BUCKETS),
        f"sequence lengths for static-shape formats (default {','.join(map(str, DEFAULT_BUCKETS))}); "
        "the largest is the max length",
        setting="sequence_buckets",
    ),
    Option(
        "budget",
        "str",
        None,
        "int8 parity budget against PyTorch, e.g. 'cosine>=0.995,spearman>=0.995': the most sensitive weight "
        "ops stay float until it holds",
        setting="int8_budget",
    ),
)


def export_options() -> list[Option]:
    """The whole table: shared options, then each format's, in registry order."""
    formats = replace(SHARED[0], help=f"{SHARED[0].help}; valid: {', '.join(format_names())}")
    options = [formats, *SHARED[1:]] + [opt for fmt in all_formats() for opt in fmt.options]
    table(options)  # one declaration per key
    return options


def add_export_flags(parser: argparse.ArgumentParser) -> None:
    """Every option as a flag that parses to ``None`` when absent, so only given flags override anything."""
    for option in export_options():
        option.add_to(parser, defaults=False)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The options given as flags, by key (paths as strings)."""
    values = {}
    for option in export_options():
        value = getattr(args, option.key, None)
        if value is not None and value is not False:
            values[option.key] = str(value) if option.kind == "path" else value
    return values


def defaults() -> dict[str, Any]:
    """Every option's default, by key (``formats``: every format)."""
    values = {option.key: option.default for option in export_options()}
    values["formats"] = format_names()
    return {k: list(v) if isinstance(v, list) else v for k, v in values.items()}


def check(values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``values`` with each checked against its option (unknown keys are the caller's to refuse)."""
    by_key = table(export_options())
    for key, value in values.items():
        by_key[key].check(value, where)
    unknown = [f for f in values.get("formats") or [] if f not in format_names()]
    if unknown:
        raise PocketbertError(f"unknown format {unknown[0]!r}; valid: {', '.join(format_names())}")
    return values


def settings_from(values: dict[str, Any]) -> ExportSettings:
    """The :class:`ExportSettings` of option values (missing ones take their defaults); ``max_length`` is the
    largest bucket."""
    resolved = {**defaults(), **check(dict(values))}
    buckets = list(resolved["buckets"])
    settings: dict[str, Any] = {"max_length": buckets[-1] if buckets else 0}
    for option in export_options():
        if option.setting is not None:
            settings[option.setting] = resolved[option.key]
    return ExportSettings(**settings)


def resolved(settings: ExportSettings) -> dict[str, Any]:
    """Every setting of ``settings``, format options at their defaults where not given (for the manifest)."""
    values = settings.to_dict()
    for fmt in all_formats():
        for option in fmt.options:
            values.setdefault(option.setting or option.key, option.default)
    return values
