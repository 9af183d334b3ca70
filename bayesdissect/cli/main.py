"""The ``bayesdissect`` command line: one dispatcher, one module per command group.

Every user error (``BayesDissectError``) ends as one line on stderr and exit code 2;
no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bayesdissect.errors import BayesDissectError

# Each module in bayesdissect.commands defines ``register(subparsers)``; a command sets
# ``func`` on its parser, called as ``func(args) -> int``.
COMMAND_MODULES = ("data", "fitting", "queries", "report", "addjudge", "whatif")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesdissect",
        description="Bayesian preference dissection: hierarchical Bradley-Terry models of "
        "why judges prefer one response over another.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        module.register(sub)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BayesDissectError as exc:
        print(f"bayesdissect {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayesdissect {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
