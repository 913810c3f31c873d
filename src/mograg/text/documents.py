"""Load source files and directories into :class:`~mograg.types.Document` objects.

Supported: ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``, ``.pdf`` and
``.jsonl``/``.jsonl.gz`` (one ``{"id", "text", "metadata"}`` object per line).
Bad sources never stop a load: each becomes a :class:`LoadProblem` that names the
file (and line) and says what to do, and everything else is still loaded. Only
regular files are read (FIFOs, devices and sockets are skipped with a problem), and
no file is read past a size limit (see :mod:`mograg.text.reading`). Finding the files and
parsing them (PDF/HTML in worker processes) is :mod:`mograg.text.source_files`; reading
JSONL records, here.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mograg.errors import InputError
from mograg.text.formats import SUPPORTED_SUFFIXES, one_line
from mograg.text.reading import (
    GZIP_MAX_RATIO,
    max_file_bytes,
    mb,
    nonblank_lines,
    open_regular,
    read_error,
)
from mograg.text.safejson import JsonValueError, check_value, loads_checked
from mograg.text.source_files import (
    FileProgress,
    LoadProblem,
    Unreadable,
    bug_message,
    parsed_files,
    source_files,
)
from mograg.types import Document

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadProblem",
    "iter_documents",
    "load_documents",
    "record_to_document",
]


def _iter_jsonl(
    path: Path, display: str, problems: list[LoadProblem], limit: int,
    doc_id: str | None = None,
) -> Iterator[tuple[Document, str]]:
    """Yield ``(document, location)`` per good line; append a problem per bad line."""
    fix = "fix or remove the line"
    gz = path.name.lower().endswith(".gz")
    try:
        fd = open_regular(path)
    except Unreadable as e:
        problems.append(LoadProblem(display, str(e)))
        return
    lineno = 0
    try:
        raw_fh = os.fdopen(fd, "rb")
    except OSError as e:  # pragma: no cover - fdopen of a fresh fd
        os.close(fd)
        problems.append(LoadProblem(display, read_error(e)))
        return
    try:
        with raw_fh:
            size = os.fstat(raw_fh.fileno()).st_size
            if gz:
                fh: Any = gzip.GzipFile(fileobj=raw_fh, mode="rb")
                out_limit: int | None = max(limit, GZIP_MAX_RATIO * size)
            else:
                fh, out_limit = raw_fh, None
            for lineno, raw in nonblank_lines(fh, limit, out_limit):
                where = f"{display}:{lineno}"
                if raw is None:
                    msg = f"line is over the {mb(limit)} limit; split the record or raise " \
                        "--max-file-mb / MOGRAG_MAX_FILE_MB"
                    problems.append(LoadProblem(where, msg))
                    continue
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    msg = f"not valid UTF-8 (byte {e.start} of the line); convert the file to UTF-8"
                    problems.append(LoadProblem(where, msg))
                    continue
                try:
                    obj = loads_checked(line)
                    doc = record_to_document(obj, f"{doc_id or display}#{lineno}", display)
                except JsonValueError as e:
                    msg = str(e) if ";" in str(e) else f"{e}; {fix}"
                    problems.append(LoadProblem(where, msg))
                    continue
                yield doc, where
    except Unreadable as e:
        problems.append(LoadProblem(display, str(e)))
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, gzip.BadGzipFile) or "gzip" in str(e).lower():
            msg = f"not a valid gzip file ({one_line(e)}); re-compress it or use plain .jsonl"
        elif isinstance(e, (EOFError, zlib.error)):
            msg = f"gzip data is truncated or corrupt after line {lineno}; re-create the file"
        else:
            msg = read_error(e)
        problems.append(LoadProblem(display, msg))


def record_to_document(obj: Any, default_id: str, source: str | None = None) -> Document:
    """A :class:`Document` from a parsed ``{"id", "text", "metadata"}`` record.

    The one validation of records, shared by JSONL files and the server's
    ``POST /documents``: ``id`` a non-empty string (``default_id`` if absent), ``text``
    a string with non-whitespace characters, ``metadata`` an object; no string may hold
    a lone surrogate, no value nest deeper than :data:`mograg.text.safejson.MAX_DEPTH`.

    Raises:
        JsonValueError: One line saying which field is wrong.
    """
    if not isinstance(obj, dict):
        raise JsonValueError(f"expected a JSON object, got {type(obj).__name__}")
    check_value(obj)  # a no-op after loads_checked; needed for records built in memory
    doc_id = obj.get("id")
    if doc_id is None:
        doc_id = default_id
    elif not isinstance(doc_id, str) or not doc_id.strip():
        raise JsonValueError(f"'id' must be a non-empty string, got {json.dumps(doc_id)[:40]}")
    if "text" not in obj:
        raise JsonValueError("missing 'text'")
    text = obj["text"]
    if not isinstance(text, str):
        raise JsonValueError(f"'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise JsonValueError("'text' is empty or only whitespace")
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise JsonValueError(f"'metadata' must be an object, got {type(meta).__name__}")
    else:
        meta = dict(meta)
    if source is not None:
        meta.setdefault("source", source)
    return Document(id=doc_id, text=text, metadata=meta)


def iter_documents(
    sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    problems: list[LoadProblem],
    max_bytes: int | None = None,
    workers: int = 0,
    progress: FileProgress | None = None,
) -> Iterator[Document]:
    """Yield documents from files and directories (recursively), in a stable order.

    Args:
        sources: Files and/or directories. Directories are walked in sorted order,
            skipping hidden entries and files of unsupported types.
        problems: Receives one :class:`LoadProblem` per bad file or JSONL line
            (nothing is raised for bad input, whatever goes wrong inside one source).
        max_bytes: Size limit of one file, one JSONL line and of a .jsonl.gz's
            decompressed output (default :func:`max_file_bytes`).
        workers: parse PDF/HTML files in this many processes (0 or 1: in this one).
        progress: called after each file with its id, files done and files in all.

    Yields:
        Each loaded :class:`Document`. File documents have ``id`` = the path relative to
        the directory given (a file given directly: its name) and
        ``metadata["source"]``/``["title"]``; JSONL records keep their own id, text
        (unchanged) and metadata.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    limit = max_file_bytes() if max_bytes is None else max_bytes
    seen: dict[str, str] = {}

    def check(doc: Document, where: str) -> bool:
        first = seen.get(doc.id)
        if first is not None:
            msg = f"duplicate document id '{doc.id}' (first at {first}); ids must be unique"
            problems.append(LoadProblem(where, msg))
            return False
        seen[doc.id] = where
        return True

    files = source_files(sources, problems, limit)
    for n, ((path, display, doc_id), parsed) in enumerate(
        zip(files, parsed_files(files, workers), strict=True), start=1
    ):
        if path is None:
            where, _, msg = display.partition("\0")
            problems.append(LoadProblem(where, msg))
        elif parsed is None:
            try:
                for doc, where in _iter_jsonl(path, display, problems, limit, doc_id):
                    if check(doc, where):
                        yield doc
            except Exception as e:  # one bad source never costs the others
                problems.append(LoadProblem(display, bug_message(e)))
        else:
            docs, file_problems = parsed
            problems.extend(file_problems)
            for doc in docs:
                if check(doc, display):
                    yield doc
        if progress is not None and path is not None:
            progress(display, n, len(files))


def load_documents(
    sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    strict: bool = False,
    max_bytes: int | None = None,
) -> tuple[list[Document], list[LoadProblem]]:
    """Load all documents from ``sources``.

    Args:
        sources: Files and/or directories (see :func:`iter_documents`).
        strict: Raise :class:`~mograg.errors.InputError` on the first problem
            instead of returning it.
        max_bytes: Size limit per file (see :func:`iter_documents`).

    Returns:
        ``(documents, problems)``.
    """
    problems: list[LoadProblem] = []
    docs: list[Document] = []
    for doc in iter_documents(sources, problems, max_bytes):
        if strict and problems:
            break
        docs.append(doc)
    if strict and problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{problems[0]}{more}")
    return docs, problems
