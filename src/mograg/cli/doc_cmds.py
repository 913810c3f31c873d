"""`mograg list` and `mograg show`: the documents of an index, by the names people use."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from mograg.cli.console import out, print_json
from mograg.cli.options import IndexOpt, JsonOpt, WhereOpt, open_index
from mograg.errors import MogragError


def _row(snap: Any, d: int) -> dict[str, Any]:
    from mograg.retrieval.sources import source_of
    from mograg.text.context import document_context

    meta = snap.metadata(d)
    text = snap.text(d)
    return {
        "id": snap.doc_ids[d],
        "title": meta.get("title"),
        "periods": document_context(text, meta).periods,
        "pages": meta.get("pages"),
        "chars": len(text),
        "source": meta.get("source"),
        "collection": source_of(meta),
    }


def list_cmd(index: IndexOpt, where: WhereOpt = None, as_json: JsonOpt = False) -> None:
    """The documents of an index: id, title, periods found, pages, size (and knowledge
    source, when any document has one)."""
    from mograg.retrieval.filters import doc_mask, parse_where

    snap = open_index(index).snapshot
    mask = doc_mask(snap, parse_where(where)) if where else None
    rows = [_row(snap, d) for d in range(snap.n_docs) if mask is None or mask[d]]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    named = any(r["collection"] for r in rows)
    for col in ("id", "title", "periods", "pages", "chars", *(("source",) if named else ())):
        table.add_column(col, justify="right" if col in ("pages", "chars") else "left")
    for r in rows:
        table.add_row(Text(r["id"]), Text(str(r["title"] or "")),
                      Text(", ".join(r["periods"][:2])), str(r["pages"] or ""), str(r["chars"]),
                      *((Text(r["collection"] or ""),) if named else ()))
    out.print(table)
    out.print(Text(f"{len(rows)} of {snap.n_docs} document(s)", style="dim"))


def show(
    doc: Annotated[str, typer.Argument(help="Document id, source path or file name.")],
    index: IndexOpt,
    chars: Annotated[int, typer.Option(help="Characters of text shown (0: all).")] = 600,
    as_json: JsonOpt = False,
) -> None:
    """One document: id, metadata and the start of its text."""
    from mograg.index.names import resolve, unknown_message

    snap = open_index(index).snapshot
    doc_id = resolve(snap, doc)
    if doc_id is None:
        raise MogragError(unknown_message(snap.doc_ids, doc, str(index)))
    d = snap.doc_index[doc_id]
    text = snap.text(d)
    meta = {k: v for k, v in snap.metadata(d).items()
            if k not in ("page_starts", "headings", "labels")}
    if as_json:
        print_json({"id": doc_id, "metadata": snap.metadata(d), "text": text})
        return
    out.print(Text(doc_id, style="bold"))
    for k, v in meta.items():
        out.print(Text(f"  {k}: {v}", style="dim"))
    shown = text if chars <= 0 else text[:chars]
    out.print(Text(shown + ("…" if len(shown) < len(text) else "")))
