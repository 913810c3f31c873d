"""`mograg search` and `mograg ask`: retrieving context and answering from it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mograg.cli.console import as_sent, out, print_json, render_result
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

NoServerOpt = Annotated[
    bool,
    typer.Option("--no-server", help="Run in this process even if a `mograg serve` of the index "
                 "is running (by default the query goes to it: same output, nothing to load)."),
]


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
    no_server: NoServerOpt = False,
) -> None:
    """Retrieve up to --budget tokens of context for a question."""
    body = {"query": question, "budget": budget, "level": level, "mode": mode,
            "router": router, "strategy": strategy, "where": where}
    data = None
    if not no_server:
        from mograg.cli import remote  # the standard library's HTTP client, nothing heavy

        data = remote.search(index, body)
    if data is None:
        res = open_index(index).search(question, budget=budget, level=level, mode=mode,
                                       router=router, strategy=strategy, where=where)
        data = as_sent(res.to_dict())
    if as_json:
        print_json(data)
    else:
        render_result(data)


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
    no_server: NoServerOpt = False,
) -> None:
    """Answer a question from the index with citations (streams the answer)."""
    from mograg.server.endpoint import generator_fingerprint

    if budget < 1:
        raise typer.BadParameter("must be a positive number of tokens", param_hint="--budget")
    settings = generator_settings(
        {"kind": generator, "base_url": base_url, "timeout": timeout, "max_tokens": max_tokens},
        model, config)
    body = {"question": question, "budget": budget, "router": router, "strategy": strategy,
            "mode": mode}
    result = None
    if not no_server:
        from mograg.cli import remote

        result = remote.ask(index, body, generator_fingerprint(settings.to_dict()),
                            stream=not as_json)
    if result is None:
        from mograg.answer.generate import answer, make_generator

        ix = open_index(index)
        gen = make_generator(settings)
        result = as_sent(answer(ix, question, gen, budget=budget, router=router,
                                strategy=strategy, mode=mode,
                                stream_to=None if as_json else sys.stdout))
    if as_json:
        print_json(result)
        return
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
