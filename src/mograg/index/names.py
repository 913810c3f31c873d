"""Names people use for documents: short names, ids typed as paths or file names, and the
nearest ids when a typed one is unknown."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from mograg.types import Document

__all__ = ["keep_legacy_ids", "resolve", "short_name", "suggest", "unknown_message"]


def short_name(doc_id: str) -> str:
    """The last path component of an id ("reports/2023 Q3 AAPL.pdf" -> "2023 Q3 AAPL.pdf")."""
    return doc_id.rstrip("/").rsplit("/", 1)[-1] or doc_id


def resolve(snap: Any, given: str) -> str | None:
    """The id of the document ``given`` names: its id, its source path as given when
    indexed, or its file name when only one document has it; else None."""
    if given in snap.doc_index:
        return given
    wanted = given.replace("\\", "/").strip()
    by_source: list[str] = []
    by_name: list[str] = []
    for d, doc_id in enumerate(snap.doc_ids):
        source = str(snap.metadata(d).get("source") or "")
        if source == wanted or source.endswith("/" + wanted) or doc_id.endswith("/" + wanted):
            by_source.append(doc_id)
        elif short_name(doc_id) == wanted:
            by_name.append(doc_id)
    for found in (by_source, by_name):
        if len(found) == 1:
            return found[0]
    return None


def suggest(ids: Sequence[str], given: str, n: int = 3) -> list[str]:
    """Up to ``n`` ids closest to ``given`` (by whole id or by file name)."""
    close = difflib.get_close_matches(given, ids, n=n, cutoff=0.5)
    names = {short_name(i): i for i in ids}
    for name in difflib.get_close_matches(short_name(given), list(names), n=n, cutoff=0.5):
        if names[name] not in close:
            close.append(names[name])
    return close[:n]


def unknown_message(ids: Sequence[str], given: str, where: str) -> str:
    """One line for an unknown id, with the nearest ids when there are any."""
    near = suggest(ids, given)
    hint = f"; did you mean {', '.join(repr(i) for i in near)}?" if near else ""
    return f"unknown document id {given!r} (not in {where}){hint} (see: mograg list)"


def keep_legacy_ids(snap: Any, docs: Iterable[Document]) -> list[Document]:
    """Documents re-added to an index whose ids are the paths as typed (indexes built
    before ids were relative) keep those ids, so they replace instead of duplicating."""
    known = snap.doc_index
    out = []
    for d in docs:
        source = str(d.metadata.get("source") or "")
        if d.id not in known and source in known:
            d = Document(source, d.text, d.metadata)
        out.append(d)
    return out
