"""One declaration per export option: it makes the ``export`` / ``run`` flag, the run-config key, the override and
the :class:`pocketbert.core.artifact.ExportSettings` value, so the three can never disagree.

Shared options are listed in :mod:`pocketbert.exporting.options`; each format declares its own in its ``FORMAT``
(``options``), and the table is their concatenation.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pocketbert.errors import PocketbertError


def comma_list(value: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (empty items dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def int_list(value: str) -> list[int]:
    """``"32,64,128"`` -> ``[32, 64, 128]`` with a one-line error for anything else."""
    try:
        return [int(item) for item in comma_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


_PARSERS: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "path": str, "str-list": comma_list}
_PARSERS["int-list"] = int_list


@dataclass(frozen=True)
class Option:
    """One export option.

    Attributes:
        key: the run-config key and the argparse destination (``coreml_target``).
        kind: ``str``, ``int``, ``bool``, ``path``, ``str-list`` or ``int-list``: how a flag is parsed and what a
            TOML value must be.
        default: the value when neither the config nor a flag sets it.
        help: the flag's help text.
        choices: the valid values, checked for flags and config alike.
        owner: the format that owns it (``None``: shared by every format).
        setting: the :class:`ExportSettings` attribute it fills (``None``: not an export setting, e.g. ``formats``).
        minimum: the smallest valid value of an ``int`` option.
        metavar: the flag's placeholder in help.
        flag_name: the flag when it is not the key (``format`` for ``formats``).
    """

    key: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    owner: str | None = None
    setting: str | None = None
    minimum: int | None = None
    metavar: str | None = None
    flag_name: str | None = None

    @property
    def flag(self) -> str:
        """``--coreml-target`` for ``coreml_target``."""
        return "--" + (self.flag_name or self.key).replace("_", "-")

    def add_to(self, parser: argparse.ArgumentParser, *, defaults: bool) -> None:
        """Add the flag; with ``defaults=False`` an absent flag parses as ``None`` (so it overrides nothing)."""
        default = self.default if defaults else None
        if self.kind == "bool":
            parser.add_argument(self.flag, dest=self.key, action="store_true", default=default, help=self.help)
            return
        parser.add_argument(
            self.flag,
            dest=self.key,
            type=_PARSERS[self.kind],
            choices=self.choices if self.kind == "str" else None,
            default=default,
            help=self.help,
            metavar=self.metavar,
        )

    def check(self, value: Any, where: str = "") -> Any:
        """``value`` when it is valid for this option, else a one-line error naming ``where`` (a config key path)."""
        ok = {
            "str": isinstance(value, str),
            "path": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str-list": isinstance(value, list) and all(isinstance(v, str) for v in value),
            "int-list": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        }[self.kind]
        if value is not None and not ok:
            kind = {"str-list": "list[str]", "int-list": "list[int]", "path": "str"}.get(self.kind, self.kind)
            raise PocketbertError(f"config key {where}{self.key} must be {kind}, got {value!r}")
        if value is not None and self.choices and self.kind == "str" and value not in self.choices:
            raise PocketbertError(f"{self.key} {value!r} is not valid; valid: {', '.join(self.choices)}")
        if value is not None and self.minimum is not None and value < self.minimum:
            raise PocketbertError(f"{self.key} must be at least {self.minimum}, got {value}")
        return value


def table(options: list[Option]) -> dict[str, Option]:
    """Options by key, refusing a key declared twice (two formats claiming one flag)."""
    by_key: dict[str, Option] = {}
    for option in options:
        if option.key in by_key:
            owners = f"{by_key[option.key].owner}, {option.owner}"
            raise PocketbertError(f"option {option.key!r} is declared twice ({owners})")
        by_key[option.key] = option
    return by_key
