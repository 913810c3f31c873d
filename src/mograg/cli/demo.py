"""`mograg demo`: index the bundled demo corpus (cached) and answer its sample questions."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from mograg.cli.console import out, progress_bars, render_result, say
from mograg.cli.options import QuietOpt, open_index
from mograg.errors import MogragError

if TYPE_CHECKING:
    from mograg.types import Document

DEMO_FILES = ("*.md", "*.txt")
DEMO_BUDGET = 256


def _demo_data() -> Path:
    from importlib import resources

    return Path(str(resources.files("mograg").joinpath("data/demo")))


def _demo_documents() -> list[Document]:
    """The bundled demo corpus; ids are file names."""
    from mograg.text.documents import load_documents
    from mograg.types import Document

    root = _demo_data()
    files = sorted(p for pat in DEMO_FILES for p in root.glob(pat) if p.name != "SOURCES.md")
    docs, problems = load_documents([str(p) for p in files])
    if problems or not docs:
        raise MogragError(f"the bundled demo corpus is damaged ({problems[:1]}); reinstall mograg")
    return [Document(id=Path(d.id).name, text=d.text, metadata=d.metadata) for d in docs]


def _fingerprint(pairs: Iterator[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for doc_id, text in sorted(pairs):
        h.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def _holds_corpus(path: Path, want: str) -> bool:
    """True if ``path`` is a readable index holding exactly the demo corpus."""
    from mograg.store.storage import MANIFEST

    if not (path / MANIFEST).exists():
        return False
    try:
        snap = open_index(path).snapshot
        pairs = ((d, snap.text(i)) for i, d in enumerate(snap.doc_ids))
        return _fingerprint(pairs) == want
    except (MogragError, OSError, ValueError, KeyError):
        return False


def _build_demo(
    target: Path, docs: list[Document], quiet: bool, shown: Path | None = None
) -> None:
    from mograg.index.core import Index

    if not quiet:
        say(f"indexing the demo corpus ({len(docs)} documents) into {shown or target}")
    with progress_bars(quiet) as bars:
        report = Index.create(target).add(docs, progress=bars)
    if not quiet:
        say(f"indexed {report.chunks} chunks in {report.seconds:.1f} s")


def _demo_index(dir_: Path | None, docs: list[Document], quiet: bool) -> Path:
    """Reuse or build the demo index; returns its path."""
    import shutil

    want = _fingerprint((d.id, d.text) for d in docs)
    if dir_ is not None:
        if _holds_corpus(dir_, want):
            return dir_
        _build_demo(dir_, docs, quiet)
        return dir_
    cache = Path(os.environ.get("MOGRAG_CACHE") or Path.home() / ".cache" / "mograg") / "demo"
    if _holds_corpus(cache, want):
        if not quiet:
            say(f"reusing the demo index in {cache}")
        return cache
    try:  # build next to the cache and swap it in, so a half-built index is never reused
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=cache.parent))
    except OSError:
        tmp = Path(tempfile.mkdtemp(prefix="mograg-demo-"))
        _build_demo(tmp / "index", docs, quiet)
        return tmp / "index"
    _build_demo(tmp / "index", docs, quiet, shown=cache)
    try:
        if cache.exists():
            shutil.rmtree(cache)
        (tmp / "index").rename(cache)
        shutil.rmtree(tmp, ignore_errors=True)
        return cache
    except OSError:
        return tmp / "index"


def demo(
    dir: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Index directory [default: ~/.cache/mograg/demo, reused if current]."
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Index the bundled demo corpus and answer a few sample questions."""
    docs = _demo_documents()
    path = _demo_index(dir, docs, quiet)
    qfile = _demo_data() / "questions.jsonl"
    questions = [json.loads(line) for line in qfile.read_text("utf-8").splitlines() if line]
    ix = open_index(path)
    for q in questions:
        out.rule(Text(q["question"], style="bold"), align="left")
        render_result(ix.search(q["question"], budget=DEMO_BUDGET), shorten=500)
    out.rule()
    out.print(
        f"index: {path}\ntry:   mograg search \"your question\" --index {path}\n"
        f"       mograg eval --index {path} --questions {qfile}",
        markup=False,
    )
