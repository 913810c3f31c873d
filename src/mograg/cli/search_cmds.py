"""`mograg search` and `mograg ask`: retrieving context and answering from it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mograg.cli.console import out, print_json, render_result
from mograg.cli.options import (
    DEFAULT_STRATEGY,
    ConfigOpt,
    Generator,
    IndexOpt,
    JsonOpt,
    ModelOpt,
    ModeOpt,
    RouterOpt,
    StrategyOpt,
    WhereOpt,
    generator_settings,
    open_index,
)


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
    where: WhereOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve up to --budget tokens of context for a question."""
    ix = open_index(index)
    res = ix.search(question, budget=budget, level=level, mode=mode, router=router,
                    strategy=strategy, where=where)
    if as_json:
        print_json(res.to_dict())
    else:
        render_result(res)


def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOpt,
    generator: Annotated[
        Generator | None,
        typer.Option(help="Answer generator [default: the config's, else extractive]."),
    ] = None,
    model: ModelOpt = None,
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
    if budget < 1:
        raise typer.BadParameter("must be a positive number of tokens", param_hint="--budget")
    ix = open_index(index)
    settings = generator_settings(
        {"kind": generator, "base_url": base_url, "timeout": timeout, "max_tokens": max_tokens},
        model, config)
    gen = make_generator(settings)
    if as_json:
        print_json(answer(ix, question, gen, budget=budget, router=router,
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
