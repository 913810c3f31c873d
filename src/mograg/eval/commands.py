"""The eval commands: `mograg eval` (with a cached index of a docs file) and `train-router`."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from mograg import __version__
from mograg.errors import MogragError
from mograg.eval.answers import evaluate_answers
from mograg.eval.evaluate import EvalOutcome, collect, evaluate, fit_router
from mograg.eval.questions import load_questions
from mograg.graph.build import GraphSettings
from mograg.index.core import Index, no_progress
from mograg.index.migrate import enable_graph, upgrade
from mograg.retrieval.router_training import soft_labels
from mograg.retrieval.routers import check_router_name, save_router
from mograg.store.lexical import is_current
from mograg.store.storage import FORMAT_VERSION
from mograg.text.context import CONTEXT_VERSION
from mograg.text.documents import load_documents
from mograg.text.levels import DEFAULT_LEVELS, parse_levels
from mograg.text.segment import SPLITTER

Progress = Callable[[str, int, int], None]


def doc_lengths(index: Index) -> dict[str, int]:
    """Text length of every document (to check question spans against)."""
    snap = index.snapshot
    return {d: len(snap.text(i)) for i, d in enumerate(snap.doc_ids)}


def train_router_command(
    index: str | Path,
    questions: str | Path,
    name: str = "default",
    budget: int = 256,
    mode: str = "hybrid",
    model: str = "ridge",
    loss: str = "ce",
    labels: str = "softmax",
    limit: int | None = None,
    progress: Progress = no_progress,
    per_source: bool = False,
) -> dict[str, Any]:
    """Train a router on questions with gold evidence/answers and save it in the index
    (``per_source``: with ``model="shipped"``, per knowledge source too)."""
    check_router_name(name)  # before any work
    ix = Index.open(index)
    qs, problems = load_questions(questions, doc_lengths(ix))
    if limit:
        qs = qs[:limit]
    if len(qs) < 2:
        raise MogragError(f"{questions}: need at least 2 valid questions to train a router")
    if model == "shipped":  # the shipped models adapted to these questions (per source too)
        from mograg.eval.tune import adapt_index, question_sources

        summary = adapt_index(ix, qs, question_sources(ix, qs), budget, mode, name,
                              {"questions_file": str(questions)}, progress, per_source)
        return {**summary, "trained_on": len(qs), "skipped": len(problems),
                "problems": problems[:20]}
    col = collect(ix, qs, budget, mode, progress)
    scores = col.scores()
    with threadpool_limits(1, user_api="blas"):
        router = fit_router(col.features, scores, soft_labels(scores, labels), col.names,
                            name=name, model=model, loss=loss)
    router.meta.update({"budget": budget, "mode": mode, "labels": labels,
                        "questions_file": str(questions)})
    save_router(ix, router)
    return {
        "router": name,
        "granularities": col.names,
        "trained_on": len(qs),
        "skipped": len(problems),
        "problems": problems[:20],
        "meta": router.meta,
    }


def cache_root() -> Path:
    """Where `mograg eval --docs` keeps indexes (``MOGRAG_CACHE`` or ~/.cache/mograg)."""
    base = os.environ.get("MOGRAG_CACHE") or Path.home() / ".cache" / "mograg"
    return Path(base) / "eval-indexes"


def cached_index_dir(
    docs: Path, sizes: Sequence[int], level_vectors: str, context: bool = False
) -> Path:
    """Where :func:`index_docs_cached` keeps the index of ``docs`` with these settings: keyed by
    the file's bytes, the settings, the index format, the mograg version and the sentence
    splitter (a new splitter moves chunks, so its indexes are not reused)."""
    if not docs.exists():
        raise MogragError(f"{docs}: no such file; give a docs .jsonl or .jsonl.gz file")
    h = hashlib.sha256()
    h.update(docs.read_bytes())
    h.update(repr((tuple(sizes), level_vectors, FORMAT_VERSION, __version__)).encode())
    h.update(SPLITTER.encode())
    if context:
        h.update(CONTEXT_VERSION.encode())
    return cache_root() / h.hexdigest()[:24]


def index_docs_cached(
    docs: str | Path,
    levels: Sequence[int] | str | None = None,
    level_vectors: str = "pool",
    progress: Progress = no_progress,
    graph: bool = False,
    context: bool = False,
) -> Index:
    """Index a docs.jsonl(.gz) file once; later runs with the same bytes and settings reuse it.

    ``context``: chunks counted (and, in a section, embedded) with their document context
    (mograg.text.context)."""
    path = Path(docs)
    sizes = parse_levels(levels) if levels else DEFAULT_LEVELS
    plain = cached_index_dir(path, sizes, level_vectors)  # the same index without context
    target = cached_index_dir(path, sizes, level_vectors, context)
    if context and not (target / "manifest.json").exists() and (plain / "manifest.json").exists():
        _derive_with_context(plain, target, progress)  # embeds the sectioned lines only
    if (target / "manifest.json").exists():
        ix = Index.open(target)
        lexical = ix.manifest.get("derived", {}).get("lexical")
        if lexical and not is_current(target / "lexical" / lexical):
            upgrade(ix, progress)  # cached by an older version
        stale = (ix.manifest.get("graph") != GraphSettings().to_dict()
                 or "link_targets" not in (ix.manifest.get("graph_stats") or {}))
        if graph and stale:
            enable_graph(ix, progress=progress)  # none yet, or built by an older version
        elif not graph and ix.manifest.get("graph"):
            # an earlier --graph run added it to the cached index: score the levels only
            manifest = ix.manifest.copy()
            del manifest["graph"]
            manifest["derived"] = {k: v for k, v in manifest.get("derived", {}).items()
                                   if k != "graph"}
            ix = Index(ix.root, manifest)
        return ix
    documents, problems = load_documents([path])
    if problems:
        raise MogragError(f"{problems[0]} ({len(problems)} problem(s) in {path})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        ix = Index.create(tmp / "ix", levels=sizes, level_vectors=level_vectors, graph=graph,
                          context=context)
        ix.add(documents, progress=progress)
        (tmp / "ix").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Index.open(target)


def _derive_with_context(plain: Path, target: Path, progress: Progress) -> None:
    """The cached index ``plain`` (built without context) copied to ``target`` with context
    turned on (mograg.index.migrate.add_context; the graph, if any, is left out)."""
    import json

    from mograg.index.migrate import add_context

    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        shutil.copytree(plain, tmp / "ix", ignore=shutil.ignore_patterns(".lock", "graph"))
        manifest_path = tmp / "ix" / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for key in ("graph", "graph_stats"):
            manifest.pop(key, None)
        manifest.get("derived", {}).pop("graph", None)
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
        add_context(tmp / "ix", progress)
        (tmp / "ix").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_eval_command(
    questions: str | Path,
    index: str | Path | None = None,
    docs: str | Path | None = None,
    budgets: Sequence[int] = (256,),
    mode: str = "hybrid",
    limit: int | None = None,
    folds: int | None = None,
    train_questions: str | Path | None = None,
    routers: Sequence[str] | None = None,
    levels: str | None = None,
    graph: bool = False,
    progress: Progress = no_progress,
    generator: Any = None,
    generate_limit: int | None = None,
    context: bool = False,
) -> EvalOutcome:
    """Everything `mograg eval` does apart from printing.

    With ``generator`` (see :mod:`mograg.answer.generate`), answers are also generated from the
    best fixed level's and the routers' contexts and scored (EM / token F1).
    """
    if (index is None) == (docs is None):
        raise MogragError("give exactly one of --index DIR or --docs DOCS.jsonl.gz")
    if index is not None:
        ix = Index.open(index)
        if graph and not ix.manifest.get("graph"):
            raise MogragError(f"index {index} has no graph; rebuild it with mograg index --graph")
    else:
        assert docs is not None  # exactly one of index / docs (checked above)
        ix = index_docs_cached(docs, levels, progress=progress, graph=graph, context=context)
    lengths = doc_lengths(ix)
    qs, problems = load_questions(questions, lengths)
    if not qs:
        why = problems[0] if problems else f"{questions}: no questions"
        raise MogragError(
            f"{why}; expected eval-set JSONL (id, question, answers, evidence) or a CSV/JSONL "
            "with question and answer columns"
        )
    if limit:
        qs = qs[:limit]
    answerable = [q for q in qs if q.answers]
    if generator is not None:
        if not answerable:
            raise MogragError(
                f"{questions}: no question has reference answers; --generate needs a set "
                "with answers (e.g. squad-dev, hotpotqa-dev)"
            )
        if generate_limit:
            answerable = answerable[:generate_limit]
    train = None
    if train_questions:
        train, _ = load_questions(train_questions, lengths)
    outcome = evaluate(ix, qs, budgets, mode, routers=routers, folds=folds,
                       train_questions=train, progress=progress, skipped=len(problems))
    if generator is not None:
        for result in outcome.results:
            systems = [result["systems"]["best_fixed"]["level"], "router:entropy"]
            systems += [f"router:{r}" for r in routers or [] if f"router:{r}" not in systems]
            result["answers"] = evaluate_answers(
                ix, answerable, generator, systems, budget=result["budget"], mode=mode,
                progress=progress,
            )
    outcome.skipped = problems
    return outcome
