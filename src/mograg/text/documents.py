"""Load source files and directories into :class:`~mograg.types.Document` objects.

Supported: ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``, ``.pdf`` and
``.jsonl``/``.jsonl.gz`` (one ``{"id", "text", "metadata"}`` object per line).
Bad sources never stop a load: each becomes a :class:`LoadProblem` that names the
file (and line) and says what to do, and everything else is still loaded.
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
from mograg.types import Document

__all__ = ["SUPPORTED_SUFFIXES", "LoadProblem", "iter_documents", "load_documents"]

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
_MD_H1_RE = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
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


class _Bad(Exception):
    """Internal: a file-level problem (message only; the caller adds the path)."""


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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError as e:
        raise _Bad("cannot read file (permission denied); check its permissions") from e
    except IsADirectoryError as e:
        raise _Bad("is a directory, not a file") from e
    except OSError as e:
        raise _Bad(f"cannot read file ({e.strerror or e}); check the path") from e


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


def _markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading outside fenced code blocks."""
    in_fence = False
    for line in text.split("\n"):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            m = _MD_H1_RE.match(line)
            if m:
                return m.group(1).strip()
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
    # where each page starts in ``text`` (an empty page starts where the next one does), so
    # that a span's page can be told from its offset (mograg.integrations.spans.page_of)
    page_starts, pos = [], 0
    for p in parts:
        page_starts.append(pos)
        if p:
            pos += len(p) + 2
    return text, {"title": title or path.stem, "pages": len(pages), "page_starts": page_starts}


def _one_line(e: BaseException) -> str:
    msg = _WS_RE.sub(" ", str(e)).strip()
    name = type(e).__name__
    return f"{name}: {msg}"[:200] if msg else name


def _iter_jsonl(
    path: Path, display: str, problems: list[LoadProblem]
) -> Iterator[tuple[Document, str]]:
    """Yield ``(document, location)`` per good line; append a problem per bad line."""
    fix = "fix or remove the line"
    try:
        opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
        fh = opener(path, "rb")
    except OSError as e:
        problems.append(LoadProblem(display, _read_error(e)))
        return
    lineno = 0
    try:
        with fh:
            for lineno, raw in enumerate(fh, start=1):
                where = f"{display}:{lineno}"
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    msg = f"not valid UTF-8 (byte {e.start} of the line); convert the file to UTF-8"
                    problems.append(LoadProblem(where, msg))
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    problems.append(
                        LoadProblem(where, f"invalid JSON ({e.msg} at column {e.colno}); {fix}")
                    )
                    continue
                doc = _record_to_document(obj, display, lineno, where, problems)
                if doc is not None:
                    yield doc, where
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, gzip.BadGzipFile) or "gzip" in str(e).lower():
            msg = f"not a valid gzip file ({_one_line(e)}); re-compress it or use plain .jsonl"
        elif isinstance(e, (EOFError, zlib.error)):
            msg = f"gzip data is truncated or corrupt after line {lineno}; re-create the file"
        else:
            msg = _read_error(e)
        problems.append(LoadProblem(display, msg))


def _read_error(e: OSError) -> str:
    if isinstance(e, PermissionError):
        return "cannot read file (permission denied); check its permissions"
    return f"cannot read file ({e.strerror or e}); check the path"


def _record_to_document(
    obj: Any, display: str, lineno: int, where: str, problems: list[LoadProblem]
) -> Document | None:
    fix = "fix or remove the line"

    def bad(msg: str) -> None:
        problems.append(LoadProblem(where, f"{msg}; {fix}"))

    if not isinstance(obj, dict):
        bad(f"expected a JSON object, got {type(obj).__name__}")
        return None
    doc_id = obj.get("id")
    if doc_id is None:
        doc_id = f"{display}#{lineno}"
    elif not isinstance(doc_id, str) or not doc_id:
        bad(f"'id' must be a non-empty string, got {json.dumps(doc_id)[:40]}")
        return None
    if "text" not in obj:
        bad("missing 'text'")
        return None
    text = obj["text"]
    if not isinstance(text, str):
        bad(f"'text' must be a string, got {type(text).__name__}")
        return None
    if not text.strip():
        bad("'text' is empty")
        return None
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        bad(f"'metadata' must be an object, got {type(meta).__name__}")
        return None
    else:
        meta = dict(meta)
    meta.setdefault("source", display)
    return Document(id=doc_id, text=text, metadata=meta)


# --------------------------------------------------------------------------- walking


def _walk_dir(root: Path, display: str, problems: list[LoadProblem]) -> Iterator[tuple[Path, str]]:
    """Supported, non-hidden files under ``root`` in sorted order, with their ids."""

    def onerror(e: OSError) -> None:
        where = _display(e.filename) if e.filename else display
        problems.append(LoadProblem(where, _read_error(e)))

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
) -> Iterator[Document]:
    """Yield documents from files and directories (recursively), in a stable order.

    Args:
        sources: Files and/or directories. Directories are walked in sorted order,
            skipping hidden entries and files of unsupported types.
        problems: Receives one :class:`LoadProblem` per bad file or JSONL line
            (nothing is raised for bad input).

    Yields:
        Each loaded :class:`Document`. File documents have ``id`` = the path (forward
        slashes) and ``metadata["source"]``/``["title"]``; JSONL records keep their
        own id, text (unchanged) and metadata.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
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
        if _suffix(path.name) in (".jsonl", ".jsonl.gz"):
            for doc, where in _iter_jsonl(path, display, problems):
                if check(doc, where):
                    yield doc
            return
        for doc in _load_file(path, display, problems):
            if check(doc, display):
                yield doc

    for source in sources:
        path = Path(source)
        display = _display(source)
        if not path.exists():
            problems.append(LoadProblem(display, "no such file or directory"))
        elif path.is_dir():
            found = False
            for file_path, file_id in _walk_dir(path, display, problems):
                found = True
                yield from from_file(file_path, file_id)
            if not found:
                msg = f"no supported files in directory; supported: {_SUPPORTED_TEXT}"
                problems.append(LoadProblem(display, msg))
        else:
            yield from from_file(path, display)


def load_documents(
    sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    strict: bool = False,
) -> tuple[list[Document], list[LoadProblem]]:
    """Load all documents from ``sources``.

    Args:
        sources: Files and/or directories (see :func:`iter_documents`).
        strict: Raise :class:`~mograg.errors.InputError` on the first problem
            instead of returning it.

    Returns:
        ``(documents, problems)``.
    """
    problems: list[LoadProblem] = []
    docs: list[Document] = []
    for doc in iter_documents(sources, problems):
        if strict and problems:
            break
        docs.append(doc)
    if strict and problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{problems[0]}{more}")
    return docs, problems
