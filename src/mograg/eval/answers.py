"""Answer quality per retrieval system: SQuAD exact match and token F1 of generated answers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mograg.answer.citations import says_not_found
from mograg.answer.generate import answer_from_result
from mograg.answer.squad import answer_found, answer_scores
from mograg.errors import MogragError
from mograg.eval.questions import Question
from mograg.index.core import Index


def _system_args(spec: str) -> tuple[str | None, str]:
    """``router`` and ``strategy`` for a system name like ``level:64``, ``router:entropy+mix``."""
    name, _, strategy = spec.partition("+")
    if name.startswith("router:"):
        name = name.split(":", 1)[1]
    return (name or None), (strategy or "argmax")


def evaluate_answers(
    index: Index,
    questions: Sequence[Question],
    generator: Any,
    systems: Sequence[str] = ("router:entropy",),
    budget: int = 256,
    mode: str = "hybrid",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Answer exact match / token F1 per retrieval system (questions without answers skipped).

    Args:
        index: the index.
        questions: eval-set questions; only those with ``answers`` are used.
        generator: the generator answering every question.
        systems: retrieval systems as in ``mograg eval`` output: ``level:N``,
            ``router:NAME`` (``router:entropy``), optionally with ``+mix`` / ``+blend``.
        budget: token budget of the retrieved context.
        mode: retrieval mode.
        progress: ``progress(stage, done, total)``.

    Returns:
        ``{"questions", "budget", "generator", "systems": {name: {"em", "f1",
        "answer_in_context", "seconds_per_question", "not_found"}}}``; identical contexts
        are answered once per question.
    """
    qs = [q for q in questions if q.answers]
    if not qs:
        raise MogragError("none of the questions has reference answers; nothing to score")
    queries = index.encode_queries([q.question for q in qs])
    total = len(qs) * len(systems)
    done = 0
    out: dict[str, Any] = {}
    per_q_cache: list[dict[tuple[Any, ...], dict[str, Any]]] = [{} for _ in qs]
    for spec in systems:
        router, strategy = _system_args(spec)
        ems, f1s, ctx, nf, secs = [], [], [], [], []
        for i, (q, query) in enumerate(zip(qs, queries, strict=True)):
            res = index.search(query, budget=budget, router=router, strategy=strategy,
                               mode=mode)
            key = tuple((h.doc_id, h.start, h.end) for h in res.hits)
            t = time.perf_counter()
            result = per_q_cache[i].get(key)
            if result is None:
                result = answer_from_result(index, q.question, generator, res)
                per_q_cache[i][key] = result
            secs.append(time.perf_counter() - t)
            s = answer_scores(result["answer"], q.answers)
            ems.append(s["em"])
            f1s.append(s["f1"])
            nf.append(float(says_not_found(result["answer"])))
            ctx.append(float(answer_found(" ".join(h.text for h in res.hits), q.answers)))
            done += 1
            if progress:
                progress("answer", done, total)
        out[spec] = {
            "em": round(float(np.mean(ems)), 4),
            "f1": round(float(np.mean(f1s)), 4),
            "answer_in_context": round(float(np.mean(ctx)), 4),
            "not_found": round(float(np.mean(nf)), 4),
            "seconds_per_question": round(float(np.mean(secs)), 3),
        }
    return {"questions": len(qs), "budget": budget,
            "generator": str(getattr(generator, "name", "")), "systems": out}
