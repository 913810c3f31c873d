"""`mograg index`, `mograg delete` and `mograg info`: writing and describing an index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from mograg.cli.console import one_line, out, print_json, progress_bars, say
from mograg.cli.options import IndexOpt, JsonOpt, QuietOpt, open_index

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.types import Document


def index_cmd(
    sources: Annotated[
        list[str], typer.Argument(help="Files or directories (.txt .md .html .pdf .jsonl[.gz]).")
    ],
    index: IndexOpt,
    levels: Annotated[
        str | None,
        typer.Option(help="Level sizes in tokens, finest first [default: 32,64,128,256,512]."),
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option(help="minilm (default), e5-small (mograg[e5]), st:/path/to/model or "
                     "openai:MODEL@URL."),
    ] = None,
    float16: Annotated[bool, typer.Option("--float16", help="Store vectors as float16.")] = False,
    level_vectors: Annotated[
        Literal["embed", "pool"] | None,
        typer.Option(help="Coarser levels' vectors: pool children, or embed [default: pool]."),
    ] = None,
    graph: Annotated[
        bool,
        typer.Option("--graph", help="Also build the MoGG graph: title-mention links between "
                     "chunks; each level expanded by linked context becomes a granularity."),
    ] = False,
    graph_knn: Annotated[
        int | None,
        typer.Option(min=0, help="With --graph: also link each finest chunk to its K most "
                     "similar chunks [default: 0, off]."),
    ] = None,
    graph_radius: Annotated[
        int | None,
        typer.Option(min=1, max=3, help="With --graph: largest hop radius offered [default: 1]."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Search store of a new index: local (default), "
                     "milvus-lite:PATH or milvus://HOST:PORT."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Embed in N worker processes, committing in batches "
                     "(resumable: a re-run skips committed documents)."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Create an index, or add documents to it (same id = replace)."""
    from mograg.index.core import Index, WriteReport
    from mograg.index.settings import IndexSettings, check_existing
    from mograg.store.storage import MANIFEST
    from mograg.text.documents import LoadProblem, iter_documents

    settings = IndexSettings.from_options(
        levels=levels, embedder=embedder, float16=float16, level_vectors=level_vectors,
        graph=graph, graph_knn=graph_knn, graph_radius=graph_radius, store=store,
    )
    ix: Index | None = None
    if (index / MANIFEST).exists():
        ix = Index.open(index)
        check_existing(ix.root, ix.manifest, levels, embedder, float16, level_vectors, store)
    problems: list[LoadProblem] = []
    docs: list[Document] = []
    with progress_bars(quiet) as bars:
        for doc in iter_documents(sources, problems):
            docs.append(doc)
            bars("load", len(docs), 0)
        bars("load", len(docs), len(docs))
        if docs:
            if ix is None:
                ix = Index.create(index, settings=settings)
            elif (settings.graph is not None
                  and ix.manifest.get("graph") != settings.graph.to_dict()):
                ix.enable_graph(settings.graph, progress=bars)
            if not quiet:
                bars.log(f"indexing {len(docs)} document(s) into {index}")
            if workers is not None:
                from mograg.index.ingest import ingest

                rep = ingest(ix, docs, workers=workers, progress=bars)
                report = WriteReport(added=rep.added, replaced=rep.replaced,
                                     chunks=rep.chunks, seconds=rep.seconds)
            else:
                report = ix.add(docs, progress=bars)
    if docs:
        n_levels = len(settings.levels if ix is None else ix.levels)
        out.print(
            f"indexed {len(docs)} document(s) ({report.added} added, {report.replaced} "
            f"replaced): {report.chunks} chunks at {n_levels} "
            f"levels in {report.seconds:.1f} s -> {index}",
        )
    else:
        say("nothing indexed: no loadable documents")
    for p in problems:
        say(f"error: {one_line(p)}")
    if problems:
        say(
            f"{len(problems)} problem(s) above; "
            + ("the other documents were indexed" if docs else "fix them and re-run")
        )
        raise typer.Exit(1)
    if not docs:
        raise typer.Exit(1)


def delete(
    doc_ids: Annotated[list[str], typer.Argument(help="Document ids to delete.")],
    index: IndexOpt,
    quiet: QuietOpt = False,
) -> None:
    """Delete documents by id (unknown ids are reported: exit 1)."""
    ix = open_index(index)
    with progress_bars(quiet) as bars:
        report = ix.delete(doc_ids, progress=bars)
    out.print(f"deleted {report.deleted} document(s) from {index}")
    for missing in report.missing:
        say(f"error: unknown document id {missing!r} (not in {index})")
    if report.missing:
        raise typer.Exit(1)


def info(index: IndexOpt, as_json: JsonOpt = False) -> None:
    """Counts and settings of an index."""
    data = open_index(index).info()
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, Text(str(value)))
    out.print(table)
