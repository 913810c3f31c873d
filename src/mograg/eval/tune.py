"""`mograg tune`: adapt the shipped granularity model to a corpus without labels.

Synthetic questions are written from the corpus itself, offline (:mod:`mograg.eval.synthetic`:
a sampled sentence's key words, with its document's title, as a keyword query whose evidence
is that sentence) and scored with the same recall-at-budget code as `mograg eval`.

What they teach is *calibrated*: synthetic questions have their own bias (one-sentence
evidence favours fine sizes on every corpus), so the shipped per-query model's
per-granularity prior moves by how far this corpus's synthetic questions depart from the
model **minus how far the training corpora's own synthetic questions departed**
(``synthetic_shift``, stored with the shipped model by bench/train_default_router.py),
shrunk towards the shipped model by ``KAPPA`` pseudo-questions. Only the difference between
this corpus and the ones the model was trained on is learned, not the bias they share. The
span model is kept as shipped (``SPAN_OFFSETS_FROM_SYNTHETIC``): its per-level offsets fitted
to synthetic evidence lost points leave-one-set-out, and even fitted to the test set's *real*
labels they lose 0.16 points on average (bench/tune_loso.py). Saved in the index like a
trained router and used by every search that does not name another.

With ``--per-source``, an index of several knowledge sources (:mod:`mograg.retrieval.sources`)
gets ``n`` questions from each source and, on top, per-(source, level) span offsets and
per-source blend intercepts, shrunk the same way; ``train-router --model shipped`` fits the
same on labelled questions (:func:`adapt_index`). Opt-in because measured on two pairs of dev
sets indexed together (bench/sources.py) the per-source parts did not help (within noise,
slightly negative on average): the source-blind span model already picks fine spans from
one source and coarse ones from the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.errors import MogragError
from mograg.eval.questions import Question
from mograg.eval.synthetic import MIN_SENTENCE_TOKENS, synthetic_questions
from mograg.retrieval.granularity_model import MODEL_VERSION, GranularityModel, shipped_router
from mograg.retrieval.routing import granularity_picks
from mograg.retrieval.sources import index_sources
from mograg.retrieval.spans import Candidates, SpanModel, evidence_share, query_candidates

if TYPE_CHECKING:
    from mograg.index.core import Index

Progress = Callable[[str, int, int], None]
KAPPA = 200.0
# span offsets (labelled questions, `train-router --model shipped`, and per-source tuning)
SPAN_KAPPA = 10000.0
# synthetic questions leave the span model as shipped: chosen on the leave-one-set-out
# average of bench/tune_loso.py from a list of recipes fixed before the run, never per set
SPAN_OFFSETS_FROM_SYNTHETIC = False
SYNTHETIC_SHIFT = "synthetic_shift"  # the shipped model's meta key


def prior_shift(base: GranularityModel, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per granularity, how much better these questions' centred scores are than ``base``
    predicts (mean over questions)."""
    y = scores - scores.mean(axis=1, keepdims=True)
    return np.asarray((y - base.predict(x)).mean(axis=0))


def synthetic_shift(base: GranularityModel, xs: Sequence[np.ndarray],
                    scores: Sequence[np.ndarray]) -> list[float]:
    """The bias of synthetic questions: :func:`prior_shift` of each training corpus's
    synthetic questions, averaged with every corpus counting the same."""
    return np.mean([prior_shift(base, x, y) for x, y in zip(xs, scores, strict=True)],
                   axis=0).round(6).tolist()


def adapt(base: GranularityModel, x: np.ndarray, scores: np.ndarray,
          kappa: float = KAPPA, baseline: np.ndarray | None = None) -> GranularityModel:
    """The base model with its prior moved towards these questions' centred scores, less
    ``baseline`` (the shift that questions of this kind show on the training corpora)."""
    shift = prior_shift(base, x, scores)
    if baseline is not None:
        shift = shift - baseline
    share = len(x) / (len(x) + kappa)
    meta = {**base.meta, "tuned_on": len(x), "kappa": kappa,
            "base_model_version": base.version, "calibrated": baseline is not None}
    return replace(base, intercept=base.intercept + share * shift, meta=meta)


def adapt_spans(base: SpanModel, cands: Sequence[Candidates], shares: Sequence[np.ndarray],
                n_levels: int, kappa: float = SPAN_KAPPA) -> SpanModel:
    """The span model with per-level offsets towards these questions' evidence shares,
    each shrunk towards zero by ``kappa`` pseudo-candidates."""
    level = np.concatenate([c.level for c in cands])
    resid = np.concatenate(shares) - np.concatenate([base.predict(c.x) for c in cands])
    count = np.bincount(level, minlength=n_levels).astype(np.float64)
    total = np.bincount(level, weights=resid, minlength=n_levels)
    offset = total / (count + kappa)
    return replace(base, level_offset=offset,
                   meta={**base.meta, "tuned_on": len(level), "kappa": kappa})


def adapt_sources(model: GranularityModel, x: np.ndarray, scores: np.ndarray,
                  rows: np.ndarray, sources: Sequence[str],
                  kappa: float = KAPPA) -> GranularityModel:
    """``model`` with a per-source intercept: what each source's questions (``rows``: each
    question's row in ``sources``, -1: none) got beyond the model's prediction, shrunk towards none
    by ``kappa`` pseudo-questions."""
    resid = (scores - scores.mean(axis=1, keepdims=True)) - model.predict(x)
    onehot = (np.asarray(rows)[:, None] == np.arange(len(sources))[None]).astype(np.float64)
    delta = (onehot.T @ resid) / (onehot.sum(axis=0)[:, None] + kappa)
    return replace(model, source_intercept=delta, sources=tuple(sources),
                   meta={**model.meta, "sources": list(sources)})


def adapt_span_sources(model: SpanModel, cands: Sequence[Candidates],
                       shares: Sequence[np.ndarray], doc_rows: np.ndarray,
                       sources: Sequence[str], n_levels: int,
                       kappa: float = SPAN_KAPPA) -> SpanModel:
    """``model`` with per-(source, level) offsets: the residual evidence share of each
    source's candidates at each level beyond the model's (already tuned) estimate, shrunk
    towards none by ``kappa`` pseudo-candidates. ``doc_rows``: each document's row in
    ``sources`` (-1: none)."""
    level = np.concatenate([c.level for c in cands])
    doc = np.concatenate([c.doc if c.doc is not None else np.zeros(0, np.int64) for c in cands])
    resid = np.concatenate(shares) - np.concatenate([model.score(c) for c in cands])
    rows = doc_rows[doc]
    m = rows >= 0
    cell = rows[m] * n_levels + level[m]
    size = len(sources) * n_levels
    count = np.bincount(cell, minlength=size).astype(np.float64)
    total = np.bincount(cell, weights=resid[m], minlength=size)
    offset = (total / (count + kappa)).reshape(len(sources), n_levels)
    return replace(model, source_offset=offset, sources=tuple(sources),
                   meta={**model.meta, "sources": list(sources)})


def tune_index(
    index: Index, n: int = 200, budget: int = 256, mode: str = "hybrid", name: str = "tuned",
    seed: int = 0, progress: Progress | None = None, per_source: bool = False,
) -> dict[str, Any]:
    """Write synthetic questions, score them, adapt the shipped model, save it in the index.

    ``per_source`` (an index of several knowledge sources): ``n`` questions from each
    source and per-source offsets on top."""
    from mograg.retrieval.routers import check_router_name

    check_router_name(name)  # before any work
    srcs = index_sources(index.snapshot)
    if per_source and srcs.several:  # n questions from each knowledge source
        qs, q_rows = [], []
        for r in range(len(srcs.names)):
            got = synthetic_questions(index, n, seed, docs=srcs.of_doc == r)
            qs += got
            q_rows += [r] * len(got)
    else:
        qs = synthetic_questions(index, n, seed)
        q_rows = [-1] * len(qs)
    if len(qs) < 2:
        raise MogragError(f"index {index.root} has too little text to write questions from "
                          f"(found {len(qs)} sentences of {MIN_SENTENCE_TOKENS}+ tokens)")
    summary = adapt_index(index, qs, np.array(q_rows, np.int64), budget, mode, name,
                          {"seed": seed}, progress, per_source, synthetic=True)
    return {**summary, "example_questions": [q.question for q in qs[:3]]}


def question_sources(index: Index, qs: Sequence[Question]) -> np.ndarray:
    """Each question's knowledge source: its first evidence document's row (-1: none)."""
    snap = index.snapshot
    of_doc = index_sources(snap).of_doc
    return np.array([of_doc[snap.doc_index[q.evidence[0][0]]]
                     if q.evidence and q.evidence[0][0] in snap.doc_index else -1
                     for q in qs], np.int64)


def adapt_index(
    index: Index, qs: Sequence[Question], q_rows: np.ndarray, budget: int = 256,
    mode: str = "hybrid", name: str = "tuned", meta: dict[str, Any] | None = None,
    progress: Progress | None = None, per_source: bool = False, synthetic: bool = False,
) -> dict[str, Any]:
    """Score ``qs`` (with evidence) at every granularity, adapt both shipped models to them
    — with ``per_source``, per knowledge source too when the index has several (``q_rows``:
    each question's source row) — and save the result in the index as its default router
    ``name``. ``synthetic`` questions (``tune``) move the prior calibrated by the shipped
    model's ``synthetic_shift`` and leave the span model's level offsets at zero."""
    from threadpoolctl import threadpool_limits

    from mograg.eval.evaluate import collect
    from mograg.index.core import no_progress
    from mograg.retrieval.routers import check_router_name, store_router

    check_router_name(name)
    router = shipped_router(index)
    srcs = index_sources(index.snapshot)
    several = per_source and srcs.several
    with threadpool_limits(1, user_api="blas"):
        col = collect(index, qs, budget, mode, progress or no_progress)
        x = np.array([router.features(index, q, r)
                      for q, r in zip(col.queries, col.rankings, strict=True)])
        extra = {}
        if router.span_model is not None:
            cands = [query_candidates(index, q, r, [granularity_picks(index, q, r, nm)
                                                    for nm in col.names])
                     for q, r in zip(col.queries, col.rankings, strict=True)]
            shares = [evidence_share(index.snapshot, c, question.evidence)
                      for c, question in zip(cands, qs, strict=True)]
            if SPAN_OFFSETS_FROM_SYNTHETIC or not synthetic:
                spans = adapt_spans(router.span_model, cands, shares, len(index.levels))
            else:  # kept as shipped (module docstring)
                spans = replace(router.span_model, level_offset=np.zeros(len(index.levels)))
            if several:
                spans = adapt_span_sources(spans, cands, shares, srcs.of_doc, srcs.names,
                                           len(index.levels))
            extra["span_file"] = spans.to_bytes()
    keep = [router.model.names.index(nm) for nm in col.names]
    base = router.model
    baseline = None
    if synthetic and SYNTHETIC_SHIFT in base.meta:
        baseline = np.asarray(base.meta[SYNTHETIC_SHIFT], np.float64)[keep]
    if keep != list(range(len(base.names))):  # an index without the graph granularities
        base = replace(base, names=list(col.names), coef=base.coef[:, keep],
                       intercept=base.intercept[keep])
    tuned = adapt(base, x, col.scores(), baseline=baseline)
    if several:
        tuned = adapt_sources(tuned, x, col.scores(), q_rows, srcs.names)
    tuned.meta.update({"budget": budget, "mode": mode, **(meta or {})})
    store_router(index, name, tuned.to_bytes(), {
        "names": tuned.names, "model": "granularity-model", "loss": "mse",
        "base_model_version": MODEL_VERSION}, extra=extra)
    out: dict[str, Any] = {
        "router": name, "questions": len(qs), "granularities": tuned.names,
        "prior_shift": {nm: round(float(v), 4) for nm, v in
                        zip(tuned.names, tuned.intercept - base.intercept, strict=True)}}
    if several:
        out["sources"] = {src: {nm: round(float(v), 4) for nm, v in
                                zip(tuned.names, row, strict=True)}
                          for src, row in zip(srcs.names, tuned.source_intercept, strict=True)}
    return out
