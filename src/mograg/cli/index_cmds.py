"""`mograg index`, `mograg delete` and `mograg info`: writing and describing an index."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.text import Text

from mograg.cli.console import one_line, out, print_json, progress_bars, say
from mograg.cli.options import IndexOpt, JsonOpt, QuietOpt, open_index
from mograg.errors import MogragError

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
        bool | None,
        typer.Option("--graph/--no-graph", help="Build the MoGG graph: title-mention links "
                     "between chunks; each level expanded by linked context becomes a "
                     "granularity [default: on for a new index; costs < 1% of index time]."),
    ] = None,
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
    context: Annotated[
        bool | None,
        typer.Option("--context/--no-context",
                     help="New index: BM25-count each chunk with its document's title, "
                     "periods and section heading, and embed it with them where it has a "
                     "section (returned text is unchanged) "
                     "[default: on when every document is a PDF (reports, filings: their "
                     "running headers are removed, the context restores whose and when), "
                     "else off: it hurts linked Wikipedia-style sets such as hotpotqa]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Embed in N worker processes, committing in batches "
                     "(resumable: a re-run skips committed documents)."),
    ] = None,
    max_file_mb: Annotated[
        float | None,
        typer.Option(help="Size limit of one file, one JSONL line and of what a .jsonl.gz "
                     "expands to, in MB [default: MOGRAG_MAX_FILE_MB or 32]; larger "
                     "ones are skipped with a line."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Knowledge source of these documents (e.g. papers, textbook), stored "
                     "as their metadata 'collection' (JSONL records may set it themselves); "
                     "mograg tune weights granularities per source."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Create an index, or add documents to it (same id = replace)."""
    from mograg.index.core import Index, WriteReport
    from mograg.index.settings import IndexSettings, check_existing
    from mograg.store.storage import MANIFEST
    from mograg.text.documents import LoadProblem, iter_documents

    exists = (index / MANIFEST).exists()
    # the graph is on by default for a new index (measured: < 1% of index time, +1 to +24
    # points on the dev sets whose documents link by title, equal elsewhere); an existing
    # index gets one only when asked
    asked = bool(graph) or graph_knn is not None or graph_radius is not None
    graph_on = graph is not False and (asked or not exists)
    settings = IndexSettings.from_options(
        levels=levels, embedder=embedder, float16=float16, level_vectors=level_vectors,
        graph=graph_on, graph_knn=graph_knn if graph_on else None,
        graph_radius=graph_radius if graph_on else None, store=store, context=bool(context),
    )
    if source is not None:
        from mograg.retrieval.sources import check_source_name

        source = check_source_name(source)
    if max_file_mb is not None and not max_file_mb > 0:
        raise MogragError(f"--max-file-mb must be a positive number, got {max_file_mb}")
    max_bytes = int(max_file_mb * 1_000_000) if max_file_mb is not None else None
    ix: Index | None = None
    if (index / MANIFEST).exists():
        ix = Index.open(index)
        check_existing(ix.root, ix.manifest, levels, embedder, float16, level_vectors, store)
    problems: list[LoadProblem] = []
    docs: list[Document] = []
    t0 = time.perf_counter()
    with progress_bars(quiet) as bars:
        # PDF/HTML files are parsed in parallel; the bar names each file and the ETA
        docs.extend(iter_documents(sources, problems, max_bytes, workers=os.cpu_count() or 1,
                                   progress=lambda name, n, total: bars.item(
                                       "load", name, n, total)))
        load_s = time.perf_counter() - t0
        if source is not None:
            from mograg.retrieval.sources import with_source

            docs = with_source(docs, source)
        if docs:
            if ix is None:
                if context is None:  # PDFs only: their running headers named whose and when
                    settings = replace(settings, context=all("page_starts" in d.metadata
                                                             for d in docs))
                ix = Index.create(index, settings=settings)
            else:  # an index built when ids were the paths as typed keeps them
                from mograg.index.names import keep_legacy_ids

                docs = keep_legacy_ids(ix.snapshot, docs)
            if (settings.graph is not None
                  and ix.manifest.get("graph") != settings.graph.to_dict()):
                from mograg.index.migrate import enable_graph

                enable_graph(ix, settings.graph, progress=bars)
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
            f"levels in {time.perf_counter() - t0:.1f} s (loading {load_s:.1f} s) -> {index}",
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
    """Delete documents by id, source path or file name (unknown ones: exit 1)."""
    from mograg.index.names import resolve, unknown_message

    ix = open_index(index)
    named = {given: resolve(ix.snapshot, given) for given in doc_ids}
    ids = [i for i in named.values() if i is not None]
    unknown = [given for given, i in named.items() if i is None]
    with progress_bars(quiet) as bars:
        report = ix.delete(ids, progress=bars) if ids else None
    out.print(f"deleted {report.deleted if report else 0} document(s) from {index}")
    for given in unknown:
        say(f"error: {unknown_message(ix.snapshot.doc_ids, given, str(index))}")
    if unknown:
        raise typer.Exit(1)


def info(index: IndexOpt, as_json: JsonOpt = False) -> None:
    """Counts and settings of an index."""
    data = open_index(index).info()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        if isinstance(value, dict):
            if key == "sources" and not value:  # no knowledge source named: nothing to say
                continue
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, Text(str(value)))
    out.print(table)
