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
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from mograg.errors import InputError
from mograg.text.html import html_to_text
from mograg.text.reading import (
    GZIP_MAX_RATIO,
    Unreadable,
    max_file_bytes,
    mb,
    nonblank_lines,
    not_regular,
    open_regular,
    printable,
    read_bytes,
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

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".txt",
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".pdf",
    ".jsonl",
    ".jsonl.gz",
)
_SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)

_BINARY_SNIFF = 8192
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
_WS_RE = re.compile(r"\s+")
_MANY_NL_RE = re.compile(r"\n{3,}")


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
_read_bytes = read_bytes


# --------------------------------------------------------------------------- helpers


def _suffix(name: str) -> str:
    """The supported suffix ``name`` ends with (lower case), else its last suffix."""
    low = name.lower()
    if low.endswith(".jsonl.gz"):
        return ".jsonl.gz"
    return PurePath(low).suffix


def _display(path: str | os.PathLike[str]) -> str:
    """The path as given, with forward slashes."""
    return PurePath(path).as_posix()


def _decode_text(data: bytes) -> str:
    """Decode UTF-8 (BOM stripped) and normalise line endings to ``\\n``."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Bad("looks like UTF-16 text; convert it to UTF-8")
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise _Bad(f"looks binary (NUL bytes); supported file types: {_SUPPORTED_TEXT}")
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(f"not valid UTF-8 (byte {e.start + skip}); convert it to UTF-8") from e
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _require_text(text: str) -> str:
    if not text.strip():
        raise _Bad("empty file; nothing to index")
    return text


def _h1_content(line: str) -> str | None:
    """The text of a level-1 ATX heading line (CommonMark), else None. Linear time."""
    body = line.lstrip(" ")
    if len(line) - len(body) > 3 or not body.startswith("#"):
        return None
    rest = body[1:]
    if not rest or rest[0] not in " \t":
        return None
    content = rest.strip(" \t")
    # an optional closing sequence: spaces/tabs then only '#'s
    closing = content.rstrip("#")
    if closing != content and (not closing or closing[-1] in " \t"):
        content = closing.rstrip(" \t")
    return content.strip() or None


def _markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading outside fenced code blocks."""
    in_fence = False
    for line in text.split("\n"):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            title = _h1_content(line)
            if title:
                return title
    return None


# --------------------------------------------------------------------------- formats


def _load_text(path: Path, markdown: bool) -> tuple[str, dict[str, Any]]:
    text = _require_text(_decode_text(_read_bytes(path)))
    title = _markdown_title(text) if markdown else None
    return text, {"title": title or path.stem}


def _load_html(path: Path) -> tuple[str, dict[str, Any]]:
    raw = _decode_text(_read_bytes(path))
    _require_text(raw)
    text, title = html_to_text(raw)
    if not text.strip():
        raise _Bad("no visible text in HTML; nothing to index")
    return text, {"title": title or path.stem}


def _load_pdf(path: Path) -> tuple[str, dict[str, Any]]:
    import logging

    from pypdf import PdfReader

    data = _read_bytes(path)
    if not data.strip():
        raise _Bad("empty file; nothing to index")
    fix = "check it opens in a PDF viewer, or re-export it"
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.ERROR)  # pypdf warns loudly about minor defects
    try:
        import io

        try:
            reader = PdfReader(io.BytesIO(data))
        except Exception as e:
            raise _Bad(f"cannot read PDF ({_one_line(e)}); {fix}") from e
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as e:
                raise _Bad(f"cannot read PDF (encrypted: {_one_line(e)}); decrypt it first") from e
            if not ok:
                raise _Bad("cannot read PDF (password-protected); decrypt it first")
        try:
            pages = [(page.extract_text() or "") for page in reader.pages]
        except Exception as e:
            raise _Bad(f"cannot read PDF ({_one_line(e)}); {fix}") from e
        title = None
        try:
            meta = reader.metadata
            if meta is not None and isinstance(meta.title, str):
                title = _WS_RE.sub(" ", meta.title).strip() or None
        except Exception:
            title = None
    finally:
        log.setLevel(level)
    parts = [
        p.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").strip() for p in pages
    ]
    text = "\n\n".join(p for p in parts if p)
    if not text.strip():
        raise _Bad("no extractable text (scanned PDF?); OCR it first")
    return text, {"title": title or path.stem, "pages": len(pages)}


def _one_line(e: BaseException) -> str:
    msg = _WS_RE.sub(" ", str(e)).strip()
    name = type(e).__name__
    return f"{name}: {msg}"[:200] if msg else name


def _iter_jsonl(
    path: Path, display: str, problems: list[LoadProblem], limit: int
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
                    doc = record_to_document(obj, f"{display}#{lineno}", display)
                except JsonValueError as e:
                    msg = str(e) if ";" in str(e) else f"{e}; {fix}"
                    problems.append(LoadProblem(where, msg))
                    continue
                yield doc, where
    except _Bad as e:
        problems.append(LoadProblem(display, str(e)))
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, gzip.BadGzipFile) or "gzip" in str(e).lower():
            msg = f"not a valid gzip file ({_one_line(e)}); re-compress it or use plain .jsonl"
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
            if name.startswith(".") or _suffix(name) not in SUPPORTED_SUFFIXES:
                continue
            rel = (rel_dir / name).as_posix()
            yield Path(dirpath) / name, f"{display.rstrip('/')}/{rel}"


def _load_file(path: Path, display: str, problems: list[LoadProblem]) -> Iterator[Document]:
    """The document of one non-JSONL file (none if it has a problem)."""
    suffix = _suffix(path.name)
    try:
        if suffix == ".txt":
            text, meta = _load_text(path, markdown=False)
        elif suffix in (".md", ".markdown"):
            text, meta = _load_text(path, markdown=True)
        elif suffix in (".html", ".htm"):
            text, meta = _load_html(path)
        elif suffix == ".pdf":
            text, meta = _load_pdf(path)
        else:
            shown = suffix or "(none)"
            raise _Bad(f"unsupported file type '{shown}'; supported: {_SUPPORTED_TEXT}")
    except _Bad as e:
        problems.append(LoadProblem(display, str(e)))
        return
    yield Document(id=display, text=text, metadata={"source": display, **meta})


def iter_documents(
    sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    problems: list[LoadProblem],
    max_bytes: int | None = None,
) -> Iterator[Document]:
    """Yield documents from files and directories (recursively), in a stable order.

    Args:
        sources: Files and/or directories. Directories are walked in sorted order,
            skipping hidden entries and files of unsupported types.
        problems: Receives one :class:`LoadProblem` per bad file or JSONL line
            (nothing is raised for bad input, whatever goes wrong inside one source).
        max_bytes: Size limit of one file, one JSONL line and of a .jsonl.gz's
            decompressed output (default :func:`max_file_bytes`).

    Yields:
        Each loaded :class:`Document`. File documents have ``id`` = the path (forward
        slashes) and ``metadata["source"]``/``["title"]``; JSONL records keep their
        own id, text (unchanged) and metadata.
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

    def from_file(path: Path, display: str) -> Iterator[Document]:
        if display != printable(display):
            msg = "file name is not valid UTF-8; rename the file (e.g. with convmv)"
            problems.append(LoadProblem(printable(display), msg))
            return
        try:
            st = os.stat(path)
        except OSError as e:
            problems.append(LoadProblem(display, read_error(e)))
            return
        why = not_regular(st.st_mode)
        if why:
            problems.append(LoadProblem(display, why))
            return
        jsonl = _suffix(path.name) in (".jsonl", ".jsonl.gz")
        if not jsonl and st.st_size > limit:
            problems.append(LoadProblem(display, too_big(st.st_size, limit)))
            return
        try:
            if jsonl:
                for doc, where in _iter_jsonl(path, display, problems, limit):
                    if check(doc, where):
                        yield doc
                return
            for doc in _load_file(path, display, problems):
                if check(doc, display):
                    yield doc
        except Exception as e:  # one bad source never costs the others
            msg = f"could not be loaded ({_one_line(e)}); please report this as a mograg bug"
            problems.append(LoadProblem(display, msg))

    for source in sources:
        path = Path(source)
        display = _display(source)
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as e:  # e.g. a name too long
            problems.append(LoadProblem(printable(display), read_error(e)))
            continue
        if not exists:
            problems.append(LoadProblem(printable(display), "no such file or directory"))
        elif is_dir:
            found = False
            for file_path, file_id in _walk_dir(path, display, problems):
                found = True
                yield from from_file(file_path, file_id)
            if not found:
                msg = f"no supported files in directory; supported: {_SUPPORTED_TEXT}"
                problems.append(LoadProblem(printable(display), msg))
        else:
            yield from from_file(path, display)


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
