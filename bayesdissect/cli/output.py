"""Shared output for table-producing commands: ``--format table|csv|json`` and ``--out``."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from bayesdissect._io import atomic_path


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--format`` and ``--out`` to a command that prints a table."""
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table",
                        help="output format (default: table)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="write to FILE instead of stdout (written atomically)")


def render(df: pd.DataFrame, fmt: str) -> str:
    """Render a table as an aligned text table, CSV, or JSON records."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=1) + "\n"
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 200, "display.float_format", "{:.3f}".format):
        return df.to_string(index=False) + "\n"


def emit(df: pd.DataFrame, args: argparse.Namespace) -> None:
    """Print ``df`` in ``args.format``, or write it atomically to ``args.out``."""
    text = render(df, args.format)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
