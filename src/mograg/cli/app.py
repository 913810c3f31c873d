"""The ``mograg`` command line: parsing, progress display and printing only.

All logic lives in the library; every user error ends as one ``error: ...`` line on
stderr with exit code 2 (bad input files: exit 1 after the good ones are indexed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from mograg import __version__
from mograg.errors import MogragError

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.types import Document, SearchResult

# Kept here (not imported) so `mograg --version` and `--help` stay fast.
MODES = ("hybrid", "dense", "bm25")
STRATEGIES = ("argmax", "mix", "blend")
DEFAULT_STRATEGY = "blend"
DEMO_FILES = ("*.md", "*.txt")
DEMO_BUDGET = 256

app = typer.Typer(
    name="mograg",
    help="Mix-of-Granularity retrieval: index documents at several chunk sizes, "
    "and route each question to the right one.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(highlight=False, soft_wrap=True)

IndexOpt = Annotated[Path, typer.Option("--index", help="Index directory.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


# --------------------------------------------------------------------------- helpers


class Bars:
    """Rich progress bars on stderr, one per stage; a callable ``cb(stage, done, total)``."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Progress | None = None
        if enabled:
            self._bar = Progress(
                TextColumn("{task.description:>8}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Bars:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        tid = self._tasks.get(stage)
        if tid is None:
            tid = self._tasks[stage] = self._bar.add_task(stage, total=total or None)
        self._bar.update(tid, completed=done, total=total or None)

    def log(self, line: str) -> None:
        """A status line on stderr (above the bars while they run)."""
        if self._bar is None:
            _say(line)
        else:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _bars(quiet: bool) -> Bars:
    return Bars(enabled=not quiet and sys.stderr.isatty())


def _say(line: str) -> None:
    """One unwrapped line on stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split("\n")).strip()


def _open(path: Path) -> Index:
    from mograg.index.core import Index

    return Index.open(path)


def _render_result(res: SearchResult, shorten: int | None = None) -> None:
    """Readable rendering of one search result (rank, doc, level, score, span, text)."""
    routing = res.routing or {}
    if routing:
        line = Text(f"router {routing.get('router', '?')}", style="bold")
        if routing.get("strategy"):
            line.append(f" ({routing['strategy']})")
        line.append(f" chose {', '.join(map(str, routing.get('chosen', [])))}")
        weights = routing.get("weights")
        if weights:
            ws = "  ".join(f"{k.split(':', 1)[-1]}:{v:.2f}" for k, v in weights.items())
            line.append(f"   weights {ws}", style="dim")
        out.print(line)
    out.print(Text(f"{len(res.hits)} span(s), {res.n_tokens}/{res.budget} tokens", style="dim"))
    for rank, h in enumerate(res.hits, 1):
        head = Text(f"#{rank} ", style="bold cyan")
        head.append(h.doc_id, style="bold")
        head.append(
            f"  level {h.level}  score {h.score:.4f}  chars {h.start}-{h.end}  "
            f"{h.n_tokens} tokens",
            style="dim",
        )
        out.print(head)
        text = " ".join(h.text.split())
        if shorten and len(text) > shorten:
            text = text[: shorten - 1].rstrip() + "…"
        out.print(Padding(Text(text), (0, 0, 0, 4)), soft_wrap=False)


# --------------------------------------------------------------------------- callbacks


def _choice(*allowed: str) -> Any:
    """An option callback accepting only ``allowed`` values (or None)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    return check


ModeOpt = Annotated[str, typer.Option(callback=_choice(*MODES))]
StrategyOpt = Annotated[str, typer.Option(callback=_choice(*STRATEGIES))]
RouterOpt = Annotated[
    str | None,
    typer.Option(help="Trained router name, entropy, level:N or graph:N:r=R "
                 "[default: index default]."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config [default: ./mograg.toml].")
]


def _version(value: bool) -> None:
    if value:
        out.print(f"mograg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Mix-of-Granularity retrieval for RAG."""


# --------------------------------------------------------------------------- index


def _check_same_settings(
    ix: Index,
    levels: str | None,
    embedder: str | None,
    float16: bool,
    level_vectors: str | None,
) -> None:
    """Creation-only options given for an existing index must match it."""
    from mograg.text.levels import parse_levels

    m = ix.manifest
    fix = "creation options only apply to a new index: drop them or use a new --index"
    if levels is not None and list(parse_levels(levels)) != ix.levels:
        have = ",".join(map(str, ix.levels))
        raise MogragError(f"{ix.root} has levels {have}, not {levels}; {fix}")
    if embedder is not None and embedder != m["embedder"]["spec"]:
        raise MogragError(f"{ix.root} uses embedder {m['embedder']['spec']!r}; {fix}")
    if float16 and m["vector_dtype"] != "float16":
        raise MogragError(f"{ix.root} stores {m['vector_dtype']} vectors; {fix}")
    if level_vectors is not None and level_vectors != m["level_vectors"]:
        raise MogragError(f"{ix.root} uses --level-vectors {m['level_vectors']}; {fix}")


@app.command("index")
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
        typer.Option(help="minilm (default), st:/path/to/model or openai:MODEL@URL."),
    ] = None,
    float16: Annotated[bool, typer.Option("--float16", help="Store vectors as float16.")] = False,
    level_vectors: Annotated[
        str | None,
        typer.Option(
            callback=_choice("embed", "pool"),
            help="Coarser levels' vectors: pool children, or embed [default: pool].",
        ),
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
    from mograg.store.storage import MANIFEST
    from mograg.text.documents import LoadProblem, iter_documents
    from mograg.text.levels import DEFAULT_LEVELS, parse_levels

    sizes = parse_levels(levels) if levels is not None else DEFAULT_LEVELS
    graph_settings = None
    if graph or graph_knn is not None or graph_radius is not None:
        from mograg.graph.build import GraphSettings

        graph_settings = GraphSettings(k=graph_knn or 0, max_radius=graph_radius or 1)
    exists = (index / MANIFEST).exists()
    ix: Index | None = None
    if exists:
        ix = Index.open(index)
        _check_same_settings(ix, levels, embedder, float16, level_vectors)
        if store is not None:
            from mograg.store.milvus import parse_store

            have = ix.manifest.get("store") or {}
            if (parse_store(store) or {}).get("uri") != have.get("uri"):
                raise MogragError(
                    f"{ix.root} uses the {have.get('uri', 'local')} store; "
                    "--store only applies to a new index"
                )
    problems: list[LoadProblem] = []
    docs: list[Document] = []
    with _bars(quiet) as bars:
        for doc in iter_documents(sources, problems):
            docs.append(doc)
            bars("load", len(docs), 0)
        bars("load", len(docs), len(docs))
        if docs:
            if ix is None:
                ix = Index.create(
                    index,
                    levels=sizes,
                    embedder=embedder,
                    vector_dtype="float16" if float16 else "float32",
                    level_vectors=level_vectors or "pool",
                    graph=graph_settings or False,
                    store=store,
                )
            elif graph_settings and ix.manifest.get("graph") != graph_settings.to_dict():
                ix.enable_graph(graph_settings, progress=bars)
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
        out.print(
            f"indexed {len(docs)} document(s) ({report.added} added, {report.replaced} "
            f"replaced): {report.chunks} chunks at {len(sizes if ix is None else ix.levels)} "
            f"levels in {report.seconds:.1f} s -> {index}",
        )
    else:
        _say("nothing indexed: no loadable documents")
    for p in problems:
        _say(f"error: {_one_line(p)}")
    if problems:
        _say(
            f"{len(problems)} problem(s) above; "
            + ("the other documents were indexed" if docs else "fix them and re-run")
        )
        raise typer.Exit(1)
    if not docs:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- search


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOpt,
    level: Annotated[
        int | None, typer.Option(help="Search one level (its size in tokens).")
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget of the context.")] = 256,
    mode: ModeOpt = "hybrid",
    router: RouterOpt = None,
    strategy: StrategyOpt = DEFAULT_STRATEGY,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve up to --budget tokens of context for a question."""
    ix = _open(index)
    res = ix.search(question, budget=budget, level=level, mode=mode, router=router,
                    strategy=strategy)
    if as_json:
        _print_json(res.to_dict())
    else:
        _render_result(res)


# --------------------------------------------------------------------------- delete / info


@app.command()
def delete(
    doc_ids: Annotated[list[str], typer.Argument(help="Document ids to delete.")],
    index: IndexOpt,
    quiet: QuietOpt = False,
) -> None:
    """Delete documents by id (unknown ids are reported: exit 1)."""
    ix = _open(index)
    with _bars(quiet) as bars:
        report = ix.delete(doc_ids, progress=bars)
    out.print(f"deleted {report.deleted} document(s) from {index}")
    for missing in report.missing:
        _say(f"error: unknown document id {missing!r} (not in {index})")
    if report.missing:
        raise typer.Exit(1)


@app.command()
def info(index: IndexOpt, as_json: JsonOpt = False) -> None:
    """Counts and settings of an index."""
    data = _open(index).info()
    if as_json:
        _print_json(data)
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


# --------------------------------------------------------------------------- eval / train-router


def _budgets(value: str) -> list[int]:
    try:
        budgets = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give token budgets like 256 or 256,512",
                                 param_hint="--budget") from None
    if not budgets or min(budgets) < 1:
        raise typer.BadParameter(f"{value!r}: give positive token budgets like 256,512",
                                 param_hint="--budget")
    return budgets


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _eval_table(result: dict[str, Any]) -> Table:
    cols = {"recall": "recall", "precision": "prec", "iou": "IoU", "answer_recall": "ans_rec",
            "mrr": "MRR", "p50_ms": "p50 ms", "p99_ms": "p99 ms", "gap_closed": "gap closed"}
    table = Table(
        title=f"budget {result['budget']} tokens, {result['questions']} questions"
        f" ({result['skipped']} skipped), mode {result.get('mode', '?')}",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("system", style="bold", no_wrap=True)
    for c in cols.values():
        table.add_column(c, justify="right", no_wrap=True)
    for name, s in result["systems"].items():
        label = f"best_fixed = {s['level']}" if name == "best_fixed" else name
        table.add_row(label, *(_fmt(s.get(c)) for c in cols))
    return table


def _answers_table(a: dict[str, Any]) -> Table:
    t = Table(title=f"answers by {a['generator']}: {a['questions']} questions, "
              f"budget {a['budget']}", box=box.SIMPLE_HEAD)
    for c in ("system", "EM", "F1", "ans in ctx", "not found", "s/question"):
        t.add_column(c, justify="left" if c == "system" else "right")
    for name, s in a["systems"].items():
        t.add_row(name, *(_fmt(s[k]) for k in ("em", "f1", "answer_in_context",
                                                "not_found", "seconds_per_question")))
    return t


@app.command("eval")
def eval_cmd(
    questions: Annotated[
        Path, typer.Option(help="questions.jsonl[.gz] (eval-set format).", show_default=False)
    ],
    index: Annotated[Path | None, typer.Option(help="An existing index.")] = None,
    docs: Annotated[
        Path | None, typer.Option(help="docs.jsonl[.gz]: indexed first (cached).")
    ] = None,
    budget: Annotated[str, typer.Option(help="Token budget(s), e.g. 256 or 256,512.")] = "256",
    mode: ModeOpt = "hybrid",
    limit: Annotated[int | None, typer.Option(help="Use the first N questions.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write report.html and PNG plots here.")
    ] = None,
    as_json: JsonOpt = False,
    folds: Annotated[
        int | None, typer.Option(help="K-fold cross-validated routers (train on K-1 folds).")
    ] = None,
    train_questions: Annotated[
        Path | None, typer.Option(help="Train routers on these questions, test on --questions.")
    ] = None,
    router: Annotated[
        list[str] | None, typer.Option("--router", help="Also evaluate this router (repeatable).")
    ] = None,
    graph: Annotated[
        bool,
        typer.Option("--graph", help="With --docs: build the MoGG graph, score its granularities."),
    ] = False,
    generate: Annotated[
        bool, typer.Option("--generate", help="Also generate answers and score EM / F1.")
    ] = False,
    generator: Annotated[
        str | None,
        typer.Option(callback=_choice("openai", "local", "extractive"),
                     help="Generator for --generate [default: the config's, else extractive]."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name (openai) or GGUF file (local).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL for --generate.")
    ] = None,
    config: ConfigOpt = None,
    generate_limit: Annotated[
        int | None, typer.Option(help="Generate answers for the first N questions only.")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Measure retrieval quality per level, best fixed level, oracle and routers."""
    from mograg.eval.evaluate import run_eval_command

    write_report = None
    if report is not None:  # fail before the (long) run, not after it
        try:
            from mograg.eval.report import write_report
        except ImportError:
            raise MogragError("--report is not available in this version of mograg") from None
    budgets = _budgets(budget)
    if folds is not None and folds < 2:
        raise typer.BadParameter("need at least 2 folds", param_hint="--folds")
    gen = None
    if generate:
        from mograg.answer.generate import make_generator
        from mograg.config import load_config, resolve_generator_settings

        settings = resolve_generator_settings(
            {"kind": generator, "base_url": base_url}, load_config(config)
        )
        if model:
            setattr(settings, "model_path" if settings.resolved_kind == "local" else "model",
                    model)
        gen = make_generator(settings)
    with _bars(quiet) as bars:
        outcome = run_eval_command(
            questions=questions,
            index=index,
            docs=docs,
            budgets=budgets,
            mode=mode,
            limit=limit,
            folds=folds,
            train_questions=train_questions,
            routers=router or None,
            graph=graph,
            progress=bars,
            generator=gen,
            generate_limit=generate_limit,
        )
    results = getattr(outcome, "results", outcome)
    if isinstance(results, dict):
        results = [results]
    problems = list(getattr(outcome, "skipped", []) or [])
    for p in problems[:20]:
        _say(f"skipped {_one_line(p)}")
    if len(problems) > 20:
        _say(f"... and {len(problems) - 20} more")
    if problems:
        _say(f"skipped {len(problems)} invalid question(s)")
    if write_report is not None and report is not None:
        _say(f"report written to {write_report(outcome, report)}")
    if as_json:
        _print_json(results[0] if len(results) == 1 else results)
        return
    wide = Console(highlight=False, width=max(out.width, 110))
    for r in results:
        wide.print(_eval_table(r))
        if "answers" in r:
            wide.print(_answers_table(r["answers"]))


# --------------------------------------------------------------------------- ask

GENERATORS = ("openai", "local", "extractive")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOpt,
    generator: Annotated[
        str | None,
        typer.Option(callback=_choice(*GENERATORS),
                     help="openai, local or extractive [default: the config's, else "
                     "extractive]."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name (openai) or GGUF file (local).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1."),
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget of the retrieved context.")] = 256,
    router: RouterOpt = None,
    strategy: StrategyOpt = DEFAULT_STRATEGY,
    mode: ModeOpt = "hybrid",
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per LLM request [default: 60].")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Longest answer in tokens [default: 256].")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the index with citations (streams the answer)."""
    from mograg.answer.generate import answer, make_generator
    from mograg.config import load_config, resolve_generator_settings

    if budget < 1:
        raise typer.BadParameter("must be a positive number of tokens", param_hint="--budget")
    ix = _open(index)
    settings = resolve_generator_settings(
        {"kind": generator, "base_url": base_url, "timeout": timeout, "max_tokens": max_tokens},
        load_config(config),
    )
    if model:  # a flag beats env and file: a GGUF path for local, a model name otherwise
        if settings.resolved_kind == "local":
            settings.model_path = model
        else:
            settings.model = model
    gen = make_generator(settings)
    if as_json:
        _print_json(answer(ix, question, gen, budget=budget, router=router,
                           strategy=strategy, mode=mode))
        return
    result = answer(ix, question, gen, budget=budget, router=router, strategy=strategy,
                    mode=mode, stream_to=sys.stdout)
    sys.stdout.write("\n")
    routing = result["routing"]
    chosen = ", ".join(map(str, routing.get("chosen", []))) or "-"
    usage = result["usage"]
    out.print(
        f"\n{result['generator']} · router {routing.get('router', '-')} chose {chosen} · "
        f"{usage['sources_used']}/{usage['sources_retrieved']} sources, "
        f"{usage['retrieved_tokens']} tokens retrieved",
        style="dim", markup=False,
    )
    for c in result["citations"]:
        snippet = " ".join(c["text"].split())
        if len(snippet) > 160:
            snippet = snippet[:157] + "..."
        out.print(f"[{c['n']}] {c['doc_id']} ({c['start']}–{c['end']}): {snippet}",
                  markup=False)


@app.command("serve")
def serve_cmd(
    index: IndexOpt,
    host: Annotated[
        str, typer.Option(help="Address to bind; keep 127.0.0.1 unless behind a proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file", help="File holding the API key (else MOGRAG_API_KEY)."
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Require the API key for reads too.")
    ] = False,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Request body limit in MiB.")
    ] = 32.0,
    max_budget: Annotated[
        int, typer.Option(help="Largest token budget a request may ask for.")
    ] = 8192,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config ([generator] for POST /ask)."),
    ] = None,
    generator: Annotated[
        str | None,
        typer.Option(callback=_choice(*GENERATORS),
                     help="Generator for POST /ask [default: the config's, else extractive]."),
    ] = None,
) -> None:
    """Serve the index over HTTP: JSON API (docs at /docs) and a routing inspector page."""
    from mograg.server.app import serve as run_server

    run_server(index, host=host, port=port, api_key_file=api_key_file, private=private,
               max_body_bytes=int(max_body_mb * 1024 * 1024), max_budget=max_budget,
               config=config, generator_flags={"kind": generator})


@app.command("train-router")
def train_router_cmd(
    index: IndexOpt,
    questions: Annotated[
        Path, typer.Option(help="Training questions (eval-set format).", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="Router name (becomes the default).")] = "default",
    budget: Annotated[int, typer.Option(help="Token budget the labels are measured at.")] = 256,
    mode: ModeOpt = "hybrid",
    model: Annotated[
        str, typer.Option(callback=_choice("ridge", "prior", "mlp", "softmax"))
    ] = "ridge",
    loss: Annotated[str, typer.Option(callback=_choice("ce", "bce"))] = "ce",
    labels: Annotated[
        str, typer.Option(callback=_choice("softmax", "mog"))
    ] = "softmax",
    limit: Annotated[int | None, typer.Option(help="Use the first N questions.")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a granularity router on questions with gold evidence; save it in the index."""
    from mograg.eval.evaluate import train_router_command

    if budget < 1:
        raise typer.BadParameter("must be a positive number of tokens", param_hint="--budget")
    t0 = time.perf_counter()
    with _bars(quiet) as bars:
        summary = train_router_command(
            index=index, questions=questions, name=name, budget=budget, mode=mode,
            model=model, loss=loss, labels=labels, limit=limit, progress=bars,
        )
    if as_json:
        _print_json(summary)
        return
    for p in summary.get("problems", []):
        _say(f"skipped {_one_line(p)}")
    out.print(
        f"trained router {summary['router']!r} ({model}, {loss}, {labels} labels) on "
        f"{summary['trained_on']} question(s) ({summary['skipped']} skipped) in "
        f"{time.perf_counter() - t0:.1f} s; saved in {index} as the default router",
        markup=False,
    )


# --------------------------------------------------------------------------- demo


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
        snap = _open(path).snapshot
        pairs = ((d, snap.text(i)) for i, d in enumerate(snap.doc_ids))
        return _fingerprint(pairs) == want
    except (MogragError, OSError, ValueError, KeyError):
        return False


def _build_demo(
    target: Path, docs: list[Document], quiet: bool, shown: Path | None = None
) -> None:
    from mograg.index.core import Index

    if not quiet:
        _say(f"indexing the demo corpus ({len(docs)} documents) into {shown or target}")
    with _bars(quiet) as bars:
        report = Index.create(target).add(docs, progress=bars)
    if not quiet:
        _say(f"indexed {report.chunks} chunks in {report.seconds:.1f} s")


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
            _say(f"reusing the demo index in {cache}")
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


@app.command()
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
    ix = _open(path)
    for q in questions:
        out.rule(Text(q["question"], style="bold"), align="left")
        _render_result(ix.search(q["question"], budget=DEMO_BUDGET), shorten=500)
    out.rule()
    out.print(
        f"index: {path}\ntry:   mograg search \"your question\" --index {path}\n"
        f"       mograg eval --index {path} --questions {qfile}",
        markup=False,
    )


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: run the app and turn user errors into one line."""
    import importlib

    # typer may bundle its own click: take the exception classes from where typer's are
    exc = importlib.import_module(typer.BadParameter.__module__)
    no_args = getattr(exc, "NoArgsIsHelpError", None)
    command = typer.main.get_command(app)
    code = 0
    try:
        rv = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="mograg",
            standalone_mode=False,
        )
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as e:
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except exc.ClickException as e:
        if no_args is not None and isinstance(e, no_args):
            e.show()
        else:
            _say(f"error: {_one_line(e.format_message())}")
        code = 2
    except MogragError as e:
        _say(f"error: {_one_line(e)}")
        code = 2
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _say(f"error: {where}{_one_line(e.strerror or e)}")
        code = 2
    if code == 130:  # typer turns KeyboardInterrupt into exit code 130
        _say("interrupted")
    sys.exit(code)


if __name__ == "__main__":
    main()
