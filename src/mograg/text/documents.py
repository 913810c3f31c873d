"""Load source files and directories into :class:`~mograg.types.Document` objects.

Supported: ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``, ``.pdf`` and
``.jsonl``/``.jsonl.gz`` (one ``{"id", "text", "metadata"}`` object per line).
Bad sources never stop a load: each becomes a :class:`LoadProblem` that names the
file (and line) and says what to do, and everything else is still loaded. Only
regular files are read (FIFOs, devices and sockets are skipped with a problem), and
no file is read past a size limit (see :mod:`mograg.text.reading`).
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from mograg.errors import InputError
from mograg.text.formats import (
    SUPPORTED_SUFFIXES,
    SUPPORTED_TEXT,
    one_line,
    read_document,
    suffix_of,
)
from mograg.text.reading import (
    GZIP_MAX_RATIO,
    Unreadable,
    max_file_bytes,
    mb,
    nonblank_lines,
    not_regular,
    open_regular,
    printable,
    read_error,
    too_big,
)
from mograg.text.safejson import JsonValueError, check_value, loads_checked
from mograg.types import Document

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadProblem",
    "iter_documents",
    "load_documents",
    "record_to_document",
]




@dataclass
class LoadProblem:
    """One source (or JSONL line) that could not be loaded.

    Attributes:
        path: The file path as given, plus ``:line`` for JSONL lines.
        message: One line: what is wrong and what to do.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_Bad = Unreadable  # a file-level problem (message only; the caller adds the path)


# --------------------------------------------------------------------------- helpers




def _display(path: str | os.PathLike[str]) -> str:
    """The path as given, with forward slashes."""
    return PurePath(path).as_posix()










# --------------------------------------------------------------------------- formats










def _iter_jsonl(
    path: Path, display: str, problems: list[LoadProblem], limit: int,
    doc_id: str | None = None,
) -> Iterator[tuple[Document, str]]:
    """Yield ``(document, location)`` per good line; append a problem per bad line."""
    fix = "fix or remove the line"
    gz = path.name.lower().endswith(".gz")
    try:
        fd = open_regular(path)
    except _Bad as e:
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
    except _Bad as e:
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


# --------------------------------------------------------------------------- walking


def _walk_dir(root: Path, display: str, problems: list[LoadProblem]) -> Iterator[tuple[Path, str]]:
    """Supported, non-hidden files under ``root`` in sorted order, with their ids."""

    def onerror(e: OSError) -> None:
        where = _display(e.filename) if e.filename else display
        problems.append(LoadProblem(printable(where), read_error(e)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            if name.startswith(".") or suffix_of(name) not in SUPPORTED_SUFFIXES:
                continue
            rel = (rel_dir / name).as_posix()
            yield Path(dirpath) / name, f"{display.rstrip('/')}/{rel}"


def _load_file(
    path: Path, display: str, problems: list[LoadProblem], doc_id: str | None = None
) -> Iterator[Document]:
    """The document of one non-JSONL file (none if it has a problem); its id is ``doc_id``
    (default: the path as shown)."""
    try:
        text, meta = read_document(path)
    except _Bad as e:
        problems.append(LoadProblem(display, str(e)))
        return
    yield Document(id=doc_id or display, text=text, metadata={"source": display, **meta})


FileProgress = Callable[[str, int, int], None]  # (file shown, files done, files in all)
PARALLEL_SUFFIXES = frozenset({".pdf", ".html", ".htm"})  # worth a worker process each
ParsedFile = tuple[list[Document], list[LoadProblem]]


def _bug(e: BaseException) -> str:
    return f"could not be loaded ({one_line(e)}); please report this as a mograg bug"


def _load_one(path: str, display: str, doc_id: str) -> ParsedFile:
    """The document(s) of one non-JSONL file and its problems (also a worker task)."""
    problems: list[LoadProblem] = []
    try:
        return list(_load_file(Path(path), display, problems, doc_id)), problems
    except Exception as e:  # one bad source never costs the others
        return [], [*problems, LoadProblem(display, _bug(e))]


def _unfit(path: Path, display: str, limit: int) -> str | None:
    """Why a file found is not read at all (bad name, not a regular file, too big)."""
    if display != printable(display):
        return "file name is not valid UTF-8; rename the file (e.g. with convmv)"
    try:
        st = os.stat(path)
    except OSError as e:
        return read_error(e)
    why = not_regular(st.st_mode)
    if why:
        return why
    if suffix_of(path.name) not in (".jsonl", ".jsonl.gz") and st.st_size > limit:
        return too_big(st.st_size, limit)
    return None


def _files(
    sources: Sequence[str | os.PathLike[str]], problems: list[LoadProblem], limit: int
) -> list[tuple[Path | None, str, str]]:
    """Every file to load as ``(path, path as shown, document id)``, in a stable order
    (directories walked sorted). Ids are relative to the folder given (a file given
    directly: its name). ``(None, "shown\\0message", "")`` stands for a source that is a
    problem, in its place."""
    files: list[tuple[Path | None, str, str]] = []
    for source in sources:
        path = Path(source)
        display = _display(source)
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as e:  # e.g. a name too long
            files.append((None, f"{printable(display)}\0{read_error(e)}", ""))
            continue
        if not exists:
            files.append((None, f"{printable(display)}\0no such file or directory", ""))
            continue
        if is_dir:
            base = display.rstrip("/") + "/"
            found = [(p, shown, shown[len(base):])
                     for p, shown in _walk_dir(path, display, problems)]
            if not found:
                msg = f"no supported files in directory; supported: {SUPPORTED_TEXT}"
                files.append((None, f"{printable(display)}\0{msg}", ""))
        else:
            found = [(path, display, path.name)]
        for p, shown, doc_id in found:
            why = _unfit(p, shown, limit)
            files.append((None, f"{printable(shown)}\0{why}", "") if why else (p, shown, doc_id))
    return files


def _parsed(
    files: list[tuple[Path | None, str, str]], workers: int
) -> Iterator[ParsedFile | None]:
    """Per file, in order: its parsed ``(documents, problems)``, or None for JSONL (read
    by the caller as a stream). PDF/HTML files are parsed in ``workers`` processes."""
    heavy = [(str(p), d, i) for p, d, i in files
             if p is not None and suffix_of(p.name) in PARALLEL_SUFFIXES]
    results: Iterator[ParsedFile] = iter(())
    pool = None
    if workers > 1 and len(heavy) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(min(workers, len(heavy)), mp_context=mp.get_context("spawn"))
        results = pool.map(_load_one, *zip(*heavy, strict=True))
    try:
        for path, display, doc_id in files:
            if path is None:  # a source that is a problem: the caller reports it
                yield [], []
                continue
            suffix = suffix_of(path.name)
            if suffix in (".jsonl", ".jsonl.gz"):
                yield None
            elif pool is not None and suffix in PARALLEL_SUFFIXES:
                yield _next_result(results, display)
            else:
                yield _load_one(str(path), display, doc_id)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _next_result(results: Iterator[ParsedFile], display: str) -> ParsedFile:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return next(results)
    except BrokenProcessPool:
        msg = "the file's parser crashed its worker process; check it opens in a viewer"
        return [], [LoadProblem(display, msg)]


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

    files = _files(sources, problems, limit)
    for n, ((path, display, doc_id), parsed) in enumerate(
        zip(files, _parsed(files, workers), strict=True), start=1
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
                problems.append(LoadProblem(display, _bug(e)))
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
