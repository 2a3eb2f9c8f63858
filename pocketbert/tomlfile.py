"""Reading the TOML files users write (run config, parity gates, bench rules) with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed TOML at ``path``; ``what`` names the file in errors (``"gate file"`` -> ``gate file x.toml does not
    exist`` / ``… is not valid TOML: <parser message>``)."""
    path = Path(path)
    if not path.is_file():
        raise PocketbertError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PocketbertError(f"{what} {path} is not valid TOML: {exc}") from None
