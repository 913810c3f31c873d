"""The `mograg` command line."""

from mograg.cli.app import main

__all__ = ["main"]
