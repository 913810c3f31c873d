"""`mograg eval`, `mograg train-router` and `mograg tune`: measuring retrieval, training routers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from mograg.cli.console import one_line, out, print_json, progress_bars, say
from mograg.cli.options import (
    ConfigOpt,
    Generator,
    IndexOpt,
    JsonOpt,
    ModelOpt,
    ModeOpt,
    QuietOpt,
    generator_settings,
    parse_budgets,
)
from mograg.errors import MogragError
from mograg.types import RouterModel

if TYPE_CHECKING:  # rich's tables are imported when a table is drawn
    from rich.table import Table


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _eval_table(result: dict[str, Any]) -> Table:
    from rich import box
    from rich.table import Table

    cols = {"recall": "recall", "precision": "prec", "iou": "IoU", "answer_recall": "ans_rec",
            "mrr": "MRR", "token_recall": "tok_rec", "figure_recall": "fig_rec",
            "right_source": "right_src", "p50_ms": "p50 ms", "p99_ms": "p99 ms",
            "gap_closed": "gap closed"}
    # only the measures this question set has (evidence, answers, cited sources)
    cols = {k: v for k, v in cols.items()
            if any(s.get(k) is not None for s in result["systems"].values())}
    table = Table(
        title=f"budget {result['budget']} tokens, {result['questions']} questions"
        f" ({result['skipped']} skipped), mode {result.get('mode', '?')}",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("system", style="bold", no_wrap=True)
    for c in cols.values():
        table.add_column(c, justify="right", no_wrap=True)
    for name, s in result["systems"].items():
        label = {"best_fixed": f"best_fixed = {s.get('level')}",
                 "best_fixed_granularity": f"best_fixed_granularity = {s.get('granularity')}",
                 }.get(name, name)
        table.add_row(label, *(_fmt(s.get(c)) for c in cols))
    return table


def _answers_table(a: dict[str, Any]) -> Table:
    from rich import box
    from rich.table import Table

    t = Table(title=f"answers by {a['generator']}: {a['questions']} questions, "
              f"budget {a['budget']}", box=box.SIMPLE_HEAD)
    for c in ("system", "EM", "F1", "ans in ctx", "not found", "s/question"):
        t.add_column(c, justify="left" if c == "system" else "right")
    for name, s in a["systems"].items():
        t.add_row(name, *(_fmt(s[k]) for k in ("em", "f1", "answer_in_context",
                                                "not_found", "seconds_per_question")))
    return t


def eval_cmd(
    questions: Annotated[
        Path,
        typer.Option(
            help="questions.jsonl[.gz] (eval-set format), or a CSV/JSONL with question and "
            "answer columns (scored by answer tokens, figures and cited source).",
            show_default=False,
        ),
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
        list[str] | None,
        typer.Option("--router", metavar="<name>", help="Also evaluate this router (repeatable)."),
    ] = None,
    graph: Annotated[
        bool,
        typer.Option("--graph/--no-graph", help="With --docs: build the MoGG graph and score "
                     "its granularities (on by default, as for mograg index)."),
    ] = True,
    context: Annotated[
        bool,
        typer.Option("--context/--no-context", help="With --docs: BM25-count chunks with "
                     "their document context, and embed those in a section with it (off by "
                     "default, as for mograg index)."),
    ] = False,
    generate: Annotated[
        bool, typer.Option("--generate", help="Also generate answers and score EM / F1.")
    ] = False,
    generator: Annotated[
        Generator | None,
        typer.Option(help="Generator for --generate [default: the config's, else extractive]."),
    ] = None,
    model: ModelOpt = None,
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
    from mograg.eval.commands import run_eval_command

    write_report: Callable[[Any, Path], Path] | None = None
    if report is not None:  # fail before the (long) run, not after it
        try:
            from mograg.eval.report import require_plotting, write_report
        except ImportError:
            raise MogragError("--report is not available in this version of mograg") from None
        require_plotting()  # the plot extra, checked before the run
    budgets = parse_budgets(budget)
    if folds is not None and folds < 2:
        raise typer.BadParameter("need at least 2 folds", param_hint="--folds")
    gen = None
    if generate:
        from mograg.answer.generate import make_generator

        gen = make_generator(
            generator_settings({"kind": generator, "base_url": base_url}, model, config))
    with progress_bars(quiet) as bars:
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
            graph=graph and docs is not None,  # an --index is scored with what it has
            context=context,
            progress=bars,
            generator=gen,
            generate_limit=generate_limit,
        )
    results: list[dict[str, Any]] = outcome.results
    problems = list(getattr(outcome, "skipped", []) or [])
    for p in problems[:20]:
        say(f"skipped {one_line(p)}")
    if len(problems) > 20:
        say(f"... and {len(problems) - 20} more")
    if problems:
        say(f"skipped {len(problems)} invalid question(s)")
    if write_report is not None and report is not None:
        say(f"report written to {write_report(outcome, report)}")
    if as_json:
        print_json(results[0] if len(results) == 1 else results)
        return
    from rich.console import Console

    wide = Console(highlight=False, width=max(out.width, 110))
    for r in results:
        wide.print(_eval_table(r))
        if "answers" in r:
            wide.print(_answers_table(r["answers"]))


def train_router_cmd(
    index: IndexOpt,
    questions: Annotated[
        Path, typer.Option(help="Training questions (eval-set format).", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="Router name (becomes the default).")] = "default",
    budget: Annotated[int, typer.Option(help="Token budget the labels are measured at.")] = 256,
    mode: ModeOpt = "hybrid",
    model: Annotated[
        Literal[RouterModel, "shipped"],
        typer.Option(help="ridge (closed form), prior (fixed weights), softmax regression "
                     "or mlp (one hidden layer; softmax and mlp need mograg[train]); shipped: "
                     "adapt the shipped span and granularity models to these questions, as "
                     "tune does (per knowledge source when the index has several)."),
    ] = "ridge",
    loss: Annotated[
        Literal["ce", "bce"],
        typer.Option(help="Training loss: cross-entropy over levels, or per-level binary CE."),
    ] = "ce",
    labels: Annotated[
        Literal["softmax", "mog"],
        typer.Option(help="Soft labels: softmax of each level's recall, or MoG's 0.8/0.2."),
    ] = "softmax",
    limit: Annotated[int | None, typer.Option(help="Use the first N questions.")] = None,
    per_source: Annotated[bool, typer.Option(
        "--per-source", help="With --model shipped on an index of several named knowledge "
        "sources: also fit per-source offsets (measured: no gain, bench/sources.py)."
    )] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a granularity router on questions with gold evidence; save it in the index."""
    from mograg.eval.commands import train_router_command

    if budget < 1:
        raise typer.BadParameter("must be a positive number of tokens", param_hint="--budget")
    t0 = time.perf_counter()
    with progress_bars(quiet) as bars:
        summary = train_router_command(
            index=index, questions=questions, name=name, budget=budget, mode=mode,
            model=model, loss=loss, labels=labels, limit=limit, progress=bars,
            per_source=per_source,
        )
    if as_json:
        print_json(summary)
        return
    for p in summary.get("problems", []):
        say(f"skipped {one_line(p)}")
    how = (f"shipped models adapted{', per source' if summary.get('sources') else ''}"
           if model == "shipped" else f"{model}, {loss}, {labels} labels")
    out.print(
        f"trained router {summary['router']!r} ({how}) on "
        f"{summary['trained_on']} question(s) ({summary['skipped']} skipped) in "
        f"{time.perf_counter() - t0:.1f} s; saved in {index} as the default router",
        markup=False,
    )


def tune_cmd(
    index: IndexOpt,
    questions: Annotated[
        int, typer.Option(min=2, help="How many synthetic questions to write from the corpus "
                          "(from each knowledge source with --per-source).")
    ] = 200,
    name: Annotated[str, typer.Option(help="Router name (becomes the default).")] = "tuned",
    budget: Annotated[int, typer.Option(min=1, help="Token budget of the labels.")] = 256,
    mode: ModeOpt = "hybrid",
    per_source: Annotated[bool, typer.Option(
        "--per-source", help="On an index of several named knowledge sources: "
        "questions from each source and per-source offsets (measured: no gain, "
        "bench/sources.py).")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Adapt the shipped granularity model to this corpus, without labelled questions."""
    from mograg.eval.tune import tune_index
    from mograg.index.core import Index

    t0 = time.perf_counter()
    with progress_bars(quiet) as bars:
        summary = tune_index(Index.open(index), n=questions, budget=budget, mode=mode,
                             name=name, progress=bars, per_source=per_source)
    if as_json:
        print_json(summary)
        return
    out.print(
        f"tuned the shipped model on {summary['questions']} synthetic question(s) in "
        f"{time.perf_counter() - t0:.1f} s; saved in {index} as router {name!r} (the default)",
        markup=False,
    )
    if summary.get("sources"):
        out.print(f"granularities weighted per source: {', '.join(summary['sources'])}",
                  markup=False)
