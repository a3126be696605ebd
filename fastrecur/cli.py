"""The ``fastrecur`` command line: one sub-command per module in ``fastrecur.commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors a user can fix (``FastrecurError``) are printed as a single line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import FastrecurError
from .host_memory import keep_freed_host_memory

COMMAND_MODULES = ["gen_data", "train", "evaluate", "sweep", "compare", "demo", "interpret"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastrecur", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"fastrecur.commands.{module_name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_host_memory()  # CPU evaluation of long graphs otherwise spends most of its time faulting pages in
    try:
        return int(args.run(args) or 0)
    except FastrecurError as exc:
        print(f"fastrecur {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastrecur {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
