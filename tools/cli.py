"""The `navseal` command line: one entry point, one module per subcommand.

Each subcommand lives in its own module ``navseal.cmd_<name>`` exposing ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args and returning an exit
code). Adding a subcommand is adding its module name to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from navseal import __version__, crc_backend

# Order is the order shown by --help.
SUBCOMMANDS = ("decode", "gateway", "demo", "simulate", "emulate", "flash", "provision")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="navseal",
        description=(
            "navseal: electronic customs escort with navigation seals. Seal firmware tooling, "
            "the wire protocol, the gateway, the emulator and the bench."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"navseal {__version__} (CRC: {crc_backend()})",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"navseal.cmd_{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("navseal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `navseal decode ... | head` closes stdout early; that is not an error.
        return 0


if __name__ == "__main__":
    sys.exit(main())
