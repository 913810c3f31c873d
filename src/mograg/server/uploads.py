"""Uploaded documents: safe file names, loading files into Documents, request checks.

No path parameter ever touches the filesystem: uploads are written under fresh temporary
directories with sanitised base names.
"""

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mograg.errors import MogragError
from mograg.server.limits import MAX_ID_CHARS
from mograg.text.documents import load_documents
from mograg.types import Document

UPLOAD_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


def safe_name(filename: str | None) -> str:
    """The base name of an uploaded file, or an error: never a path."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name.strip()
    if not name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise MogragError(f"invalid upload file name {filename!r}; give a plain file name")
    if len(name) > 255:
        raise MogragError("upload file name is too long (over 255 characters)")
    low = name.lower()
    if not low.endswith(UPLOAD_SUFFIXES):
        raise MogragError(
            f"unsupported upload {name!r}; supported: {', '.join(UPLOAD_SUFFIXES)}"
        )
    return name


def load_uploads(files: Sequence[tuple[str, Any]]) -> list[Document]:
    """Documents from uploaded files (``(name, binary file object)``), ids = file names."""
    docs: list[Document] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mograg-upload-") as tmp:
        for k, (name, fobj) in enumerate(files):
            folder = Path(tmp) / str(k)
            folder.mkdir()
            path = folder / name
            with open(path, "wb") as out:
                shutil.copyfileobj(fobj, out, 1 << 20)
            loaded, probs = load_documents([path])
            shown = path.as_posix()

            def local(s: str, shown: str = shown, name: str = name) -> str:
                return s.replace(shown, name)

            problems += [local(str(p)) for p in probs]
            for d in loaded:
                meta = dict(d.metadata)
                if isinstance(meta.get("source"), str):
                    meta["source"] = local(meta["source"])
                docs.append(Document(id=local(d.id), text=d.text, metadata=meta))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MogragError(f"nothing was added: {problems[0]}{more}")
    return docs


def check_docs(docs: Sequence[Document]) -> None:
    if not docs:
        raise MogragError("no documents given; send a non-empty list or at least one file")
    seen: set[str] = set()
    for d in docs:
        if len(d.id) > MAX_ID_CHARS:
            raise MogragError(f"document id longer than {MAX_ID_CHARS} characters: {d.id[:40]!r}…")
        if d.id in seen:
            raise MogragError(f"duplicate document id {d.id!r} in one request; ids must be unique")
        seen.add(d.id)
