"""``pocketbert kernels``: set up and list the CPU kernel families parity can run artifacts on."""

from __future__ import annotations

import argparse

from pocketbert.cli.common import say
from pocketbert.errors import PocketbertError
from pocketbert.kernels.families import FAMILIES, HOST, missing


def _status(args: argparse.Namespace) -> int:
    from pocketbert.kernels.provision import env_dir, environment_info

    for family in FAMILIES.values():
        reason = missing(family)
        state = "ready" if reason is None else f"not ready: {reason}"
        print(f"{family.name:<11} {state}\n            {family.description}")
    info = environment_info(env_dir())
    if info:
        print(
            f"aarch64 environment: {env_dir()} ({info['size_bytes'] / 1e6:.0f} MB, set up in {info['setup_seconds']} s)"
        )
    return 0


def _setup(args: argparse.Namespace) -> int:
    from pocketbert.kernels.provision import setup_family

    names = args.families or [name for name in FAMILIES if name != HOST]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise PocketbertError(f"unknown kernel family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    for name in names:
        setup_family(name, say)
        say(f"{name}: ready")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("kernels", help="set up or list the CPU kernel families for 'parity --kernels'")
    actions = parser.add_subparsers(dest="kernels_command", metavar="ACTION")
    setup = actions.add_parser(
        "setup",
        help="install QEMU user-mode emulation and build the aarch64 runtime environment (cached; idempotent)",
    )
    setup.add_argument("families", nargs="*", metavar="FAMILY", help=f"of {', '.join(FAMILIES)} (default: all)")
    setup.set_defaults(func=_setup)
    status = actions.add_parser("status", help="which families can run here, and what each is missing")
    status.set_defaults(func=_status)
    parser.set_defaults(func=_status)
