"""The command line: ``main`` builds the parser from one module per group of commands."""

from bayesdissect.cli.main import main

__all__ = ["main"]
