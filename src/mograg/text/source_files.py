"""Finding the files of the sources given and parsing them, in worker processes for
PDF and HTML: what :func:`mograg.text.documents.iter_documents` reads from.

Every bad source becomes a :class:`LoadProblem` naming it and saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from mograg.text.formats import (
    SUPPORTED_SUFFIXES,
    SUPPORTED_TEXT,
    one_line,
    read_document,
    suffix_of,
)
from mograg.text.reading import Unreadable, not_regular, printable, read_error, too_big
from mograg.types import Document


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


def _display(path: str | os.PathLike[str]) -> str:
    """The path as given, with forward slashes."""
    return PurePath(path).as_posix()


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
    except Unreadable as e:
        problems.append(LoadProblem(display, str(e)))
        return
    yield Document(id=doc_id or display, text=text, metadata={"source": display, **meta})


FileProgress = Callable[[str, int, int], None]  # (file shown, files done, files in all)
PARALLEL_SUFFIXES = frozenset({".pdf", ".html", ".htm"})  # worth a worker process each
ParsedFile = tuple[list[Document], list[LoadProblem]]


def bug_message(e: BaseException) -> str:
    return f"could not be loaded ({one_line(e)}); please report this as a mograg bug"


def _load_one(path: str, display: str, doc_id: str) -> ParsedFile:
    """The document(s) of one non-JSONL file and its problems (also a worker task)."""
    problems: list[LoadProblem] = []
    try:
        return list(_load_file(Path(path), display, problems, doc_id)), problems
    except Exception as e:  # one bad source never costs the others
        return [], [*problems, LoadProblem(display, bug_message(e))]


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


def source_files(
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


def parsed_files(
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
