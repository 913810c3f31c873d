"""Reading untrusted source files safely: regular files only, a size limit, and JSONL
lines read in blocks with a limit on what a .gz may expand to.

Every refusal is an :class:`Unreadable` whose message is one line saying what to do.
FIFOs, devices and sockets are never opened for reading (``O_NONBLOCK`` + ``fstat``), so
nothing blocks; nothing is read past the limit (``MOGRAG_MAX_FILE_MB``, default 32 MB).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MAX_FILE_MB",
    "GZIP_MAX_RATIO",
    "Unreadable",
    "max_file_bytes",
    "mb",
    "nonblank_lines",
    "not_regular",
    "open_regular",
    "printable",
    "read_bytes",
    "read_error",
    "too_big",
]

DEFAULT_MAX_FILE_MB = 32
"""Default size limit of one file, one JSONL line, and of what a .gz may expand to."""
GZIP_MAX_RATIO = 100  # output/input beyond this (and beyond the limit): a gzip bomb
_BLOCK = 1 << 20
_BLANK_RUN_RE = re.compile(rb"[ \t\r\n\f\v]*")


class Unreadable(Exception):
    """A file cannot be read as a source; ``str(e)`` is one line (the caller adds the path)."""


def max_file_bytes() -> int:
    """The per-file size limit: ``MOGRAG_MAX_FILE_MB`` (megabytes) or the default."""
    raw = os.environ.get("MOGRAG_MAX_FILE_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_MAX_FILE_MB
    except ValueError:
        megabytes = DEFAULT_MAX_FILE_MB
    if not megabytes > 0:
        megabytes = DEFAULT_MAX_FILE_MB
    return max(1, int(megabytes * 1_000_000))


def mb(n: int) -> str:
    """``n`` bytes in (decimal) megabytes, for messages."""
    return f"{n / 1_000_000:g} MB"


def too_big(size: int, limit: int) -> str:
    """The message for a file over the limit."""
    return (
        f"file is {mb(size)}, over the {mb(limit)} limit per file; split it, "
        "or raise the limit with --max-file-mb / MOGRAG_MAX_FILE_MB"
    )


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file; skipped"


def printable(name: str) -> str:
    """``name`` with undecodable bytes (surrogate escapes) shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogateescape") if _escapes_only(name) else None
        if raw is None:
            return name.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")


def _escapes_only(name: str) -> bool:
    """True if every surrogate in ``name`` is a surrogateescape byte (U+DC80..U+DCFF)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in name)


def open_regular(path: Path) -> int:
    """An fd of ``path`` if it is a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError as e:
        raise Unreadable("cannot read file (permission denied); check its permissions") from e
    except IsADirectoryError as e:
        raise Unreadable("is a directory, not a file") from e
    except OSError as e:
        raise Unreadable(f"cannot read file ({e.strerror or e}); check the path") from e
    why = not_regular(os.fstat(fd).st_mode)
    if why:
        os.close(fd)
        raise Unreadable(why)
    return fd


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file, refused past ``limit`` (default: its size as checked
    by the caller, at least :func:`max_file_bytes`; never unbounded)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if limit is None:
            limit = max(size, max_file_bytes())
        if size > limit:
            raise Unreadable(too_big(size, limit))
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise Unreadable(f"cannot read file ({e.strerror or e}); check the path") from e
    finally:
        os.close(fd)
    if len(data) > limit:
        raise Unreadable(too_big(len(data), limit))
    return data


def nonblank_lines(
    fh: Any, limit: int, out_limit: int | None
) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` of every non-blank line, read in blocks (runs of blank
    lines are skipped in C, not one Python step per line); ``bytes`` is None for a line
    longer than ``limit``. Stops with :class:`Unreadable` once more than ``out_limit`` bytes
    have been read (decompressed output of a .gz)."""
    lineno = 1  # number of the line starting at data[0]
    carry = b""
    skipping = False  # inside a line already reported as too long
    total = 0
    read = getattr(fh, "read1", fh.read)  # read1: a truncated .gz still yields its start
    while True:
        block = read(_BLOCK)
        if not block:
            break
        total += len(block)
        if out_limit is not None and total > out_limit:
            raise Unreadable(
                f"decompresses to more than {mb(out_limit)} (a gzip bomb?); "
                "split the file or raise --max-file-mb / MOGRAG_MAX_FILE_MB"
            )
        if skipping:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            block = block[nl + 1 :]
            lineno += 1
            skipping = False
        data = carry + block if carry else block
        start = 0
        while True:
            blank = _BLANK_RUN_RE.match(data, start)  # always matches (may be empty)
            end = blank.end() if blank else start
            if end > start:
                last_nl = data.rfind(b"\n", start, end)
                if last_nl >= 0:
                    lineno += data.count(b"\n", start, last_nl + 1)
                    start = last_nl + 1
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if nl - start > limit:
                yield lineno, None
            else:
                yield lineno, data[start:nl]
            lineno += 1
            start = nl + 1
        carry = data[start:]
        if len(carry) > limit:
            yield lineno, None
            carry = b""
            skipping = True
    if carry.strip() and not skipping:
        yield lineno, carry


def read_error(e: OSError) -> str:
    """One line for an ``OSError`` while reading a source."""
    if isinstance(e, PermissionError):
        return "cannot read file (permission denied); check its permissions"
    return f"cannot read file ({e.strerror or e}); check the path"
