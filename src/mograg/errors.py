"""Errors raised for user mistakes: each carries one line that says what to do."""

from __future__ import annotations


class MogragError(Exception):
    """A user-facing error; the CLI prints its message as one line, no traceback."""


class InputError(MogragError):
    """A source file or record cannot be used (names the file and, where known, the line)."""


class IndexFormatError(MogragError):
    """An index directory is missing, damaged, or from an incompatible version."""


class MissingExtraError(MogragError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'mograg[{extra}]'"
        )
