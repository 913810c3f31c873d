"""The shipped granularity model, transferable features, rrf-levels and `mograg tune`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clirun import run
from corpus import FACTS, field_notes
from mograg.eval.evaluate import collect, evaluate
from mograg.eval.questions import Question
from mograg.eval.synthetic import synthetic_questions
from mograg.eval.tune import SYNTHETIC_SHIFT, adapt, prior_shift, synthetic_shift
from mograg.index.core import Index
from mograg.retrieval.fusion import RRF_LEVELS, rrf_picks
from mograg.retrieval.granularity_model import (
    DEFAULT_NAME,
    MODEL_VERSION,
    GranularityModel,
    ModelRouter,
    fit_model,
    shipped_model,
)
from mograg.retrieval.routers import load_router, store_router
from mograg.retrieval.routing import granularity_names
from mograg.retrieval.signals import QUESTION_FEATURES, feature_names, question_features
from mograg.types import Document

LEVELS = [32, 64, 128, 256, 512]


def docs() -> list[Document]:
    out = [Document(k, v, {"title": k.capitalize()}) for k, v in FACTS.items()]
    out += [Document(f"notes-{s}", field_notes(s, 60), {"title": f"Field notes {s}"})
            for s in range(3)]
    return out


@pytest.fixture(scope="module")
def ix(tmp_path_factory, shared_embedder) -> Index:
    index = Index.create(tmp_path_factory.mktemp("transfer") / "ix", levels=LEVELS)
    index.add(docs())
    return index


def evidence_question(qid: str, text: str, doc: str, evidence: str) -> Question:
    start = FACTS[doc].index(evidence)
    return Question(qid, text, [], [(doc, start, start + len(evidence))])


QUESTIONS = [
    evidence_question("q1", "Who first walked on the Moon?", "moon",
                      "Neil Armstrong was the first person to walk on it."),
    evidence_question("q2", "How much caffeine is in a cup of coffee?", "coffee",
                      "A typical cup contains about ninety milligrams of caffeine."),
    evidence_question("q3", "how do deltas form", "rivers",
                      "Deltas form when that sediment builds up faster than waves remove it."),
]


# --------------------------------------------------------------------------- features
def test_question_form_features():
    f = dict(zip(QUESTION_FEATURES, question_features("How many moons does Mars have?"),
                 strict=True))
    assert f["q_wh_how_many"] == 1 and f["q_wh_how"] == 0 and f["q_yes_no"] == 0
    assert f["q_names"] > 0 and f["q_lower_case"] == 0
    f = dict(zip(QUESTION_FEATURES, question_features("is the moon made of cheese in 1969"),
                 strict=True))
    assert f["q_yes_no"] == 1 and f["q_has_number"] == 1 and f["q_lower_case"] == 1
    f = dict(zip(QUESTION_FEATURES, question_features("Whose dog barked?"), strict=True))
    assert f["q_wh_who"] == 1


def test_features_are_finite_and_scale_free(ix):
    col = collect(ix, QUESTIONS, budget=64)
    router = ModelRouter(shipped_model() or _toy_model(ix))
    x = np.array([router.features(ix, q, r) for q, r in zip(col.queries, col.rankings,
                                                                strict=True)])
    assert x.shape == (len(QUESTIONS), len(feature_names(len(LEVELS))))
    assert np.all(np.isfinite(x))
    # multiplying every BM25 score (a corpus's score scale) changes no feature
    for q, rankings in zip(col.queries, col.rankings, strict=True):
        for r in rankings:
            r.bm25 = r.bm25 * 7.5
        scaled = router.features(ix, q, rankings)
        assert np.allclose(scaled, x[col.queries.index(q)])


def _toy_model(ix) -> GranularityModel:
    names = granularity_names(ix)
    rng = np.random.default_rng(0)
    n_f = len(feature_names(len(LEVELS)))
    xs = [rng.normal(size=(20, n_f)), rng.normal(size=(30, n_f))]
    ys = [rng.uniform(size=(20, len(names))), rng.uniform(size=(30, len(names)))]
    return fit_model(xs, ys, names, LEVELS)


# --------------------------------------------------------------------------- shipped model
def test_shipped_model_loads_offline_and_is_deterministic():
    model = shipped_model()
    assert model is not None, "the package must ship its granularity model"
    assert model.version == MODEL_VERSION and model.levels == LEVELS
    x = np.random.default_rng(1).normal(size=(4, len(model.mean))) * model.scale + model.mean
    first = model.weights_for(x)
    shipped_model.cache_clear()
    again = shipped_model()
    assert again is not model
    assert np.array_equal(again.weights_for(x), first)
    assert again.to_bytes() == model.to_bytes()
    assert np.allclose(first.sum(axis=1), 1.0)
    assert len(model.to_bytes()) < 5_000_000


def test_fit_is_deterministic_and_round_trips(ix):
    a, b = _toy_model(ix), _toy_model(ix)
    assert a.to_bytes() == b.to_bytes()
    back = GranularityModel.from_bytes(a.to_bytes())
    x = np.random.default_rng(2).normal(size=(5, len(a.mean)))
    assert np.array_equal(back.predict(x), a.predict(x))


def test_search_uses_shipped_model_by_default(ix):
    res = ix.search(QUESTIONS[0].question, budget=64)
    assert res.routing["router"] == DEFAULT_NAME and res.routing["strategy"] == "spans"
    assert sum(res.routing["weights"].values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(h.n_tokens for h in res.hits) <= 64
    assert ix.info()["search_router"].startswith(DEFAULT_NAME)
    # an index with other levels falls back to the training-free router, and says so
    assert "entropy" in ix.search("moon", budget=64, router="entropy").routing["router"]


def test_other_levels_fall_back_to_entropy(tmp_path, shared_embedder):
    other = Index.create(tmp_path / "other", levels=[16, 48])
    other.add(docs()[:2])
    assert load_router(other, None).name == "entropy"
    assert other.info()["search_router"].startswith("entropy (the shipped model is made for")
    code, _, err = run("search", "moon", "--index", other.root, "--router", "shipped")
    assert code == 2 and "levels [32, 64, 128, 256, 512]" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- rrf-levels
def test_rrf_levels(ix):
    col = collect(ix, QUESTIONS, budget=64)
    picks = rrf_picks(col.rankings[0])
    assert len(picks) == sum(len(r.ids) for r in col.rankings[0])
    assert {p.level for p in picks[: len(LEVELS)]} == set(range(len(LEVELS)))  # ranks 1 first
    assert all(a.score >= b.score for a, b in itertools.pairwise(picks))
    res = ix.search(QUESTIONS[1].question, budget=64, router=RRF_LEVELS)
    assert res.routing["router"] == RRF_LEVELS and sum(h.n_tokens for h in res.hits) <= 64
    systems = evaluate(ix, QUESTIONS, budgets=(64,), strategies=("blend",)).results[0]["systems"]
    assert {RRF_LEVELS, "best_fixed_granularity"} <= set(systems)
    best = systems["best_fixed_granularity"]
    assert best["recall"] == max(systems[n]["recall"] for n in granularity_names(ix))


# --------------------------------------------------------------------------- tune
def test_synthetic_questions_have_sentence_evidence(ix):
    qs = synthetic_questions(ix, 10)
    assert 2 <= len(qs) <= 10 and len({q.id for q in qs}) == len(qs)
    snap = ix.snapshot
    for q in qs:
        (doc, start, end), = q.evidence
        d = snap.doc_index[doc]
        assert 0 <= start < end <= len(snap.text(d))
        assert q.question.strip()
    assert [q.question for q in synthetic_questions(ix, 10)] == [q.question for q in qs]


def test_tune_end_to_end(tmp_path, shared_embedder):
    root = tmp_path / "tix"
    Index.create(root, levels=LEVELS).add(docs())
    code, out, err = run("tune", "--index", root, "--questions", 12, "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["router"] == "tuned" and summary["questions"] >= 2
    ix = Index.open(root)
    assert ix.manifest["default_router"] == "tuned"
    res = ix.search("Who walked on the Moon?", budget=64)
    assert res.routing["router"] == "tuned" and res.routing["strategy"] == "spans"
    tuned = load_router(ix, "tuned")
    # synthetic questions keep the span model as shipped and calibrate the prior
    assert np.array_equal(tuned.span_model.level_offset, np.zeros(len(LEVELS)))
    assert tuned.model.meta["calibrated"] and summary["prior_shift"]
    assert ix.manifest["routers"]["tuned"]["span_file"] == "routers/tuned-span.npz"
    assert ix.search("Who walked on the Moon?", budget=64, strategy="blend").routing[
        "strategy"] == "blend"
    code, out, _ = run("info", "--index", root, "--json")
    assert json.loads(out)["search_router"].startswith("tuned (trained in this index")


def test_router_tuned_from_older_model_says_so(ix):
    model = shipped_model()
    assert model is not None
    store_router(ix, "old", model.to_bytes(), {
        "names": model.names, "model": "granularity-model", "loss": "mse",
        "base_model_version": MODEL_VERSION - 1})
    line = Index.open(ix.root).info()["search_router"]
    assert "\n" not in line
    assert f"tuned from shipped model v{MODEL_VERSION - 1}" in line and "re-run mograg tune" in line
    code, out, _ = run("info", "--index", Path(ix.root))
    assert code == 0 and "re-run mograg tune" in out


# --------------------------------------------------------------------------- graph default
def test_index_builds_the_graph_by_default(tmp_path, shared_embedder):
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps({"id": d.id, "text": d.text, "metadata": d.metadata})
                             for d in docs()[:3]))
    assert run("index", src, "--index", tmp_path / "on", "--quiet")[0] == 0
    assert Index.open(tmp_path / "on").manifest.get("graph")
    assert run("index", src, "--index", tmp_path / "off", "--no-graph", "--quiet")[0] == 0
    off = Index.open(tmp_path / "off")
    assert not off.manifest.get("graph")
    # adding documents later does not switch it on unasked
    assert run("index", src, "--index", tmp_path / "off", "--quiet")[0] == 0
    assert not Index.open(tmp_path / "off").manifest.get("graph")


# --------------------------------------------------------------------------- span selection
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(1, 700), words=st.lists(
    st.sampled_from(["moon", "coffee", "delta", "heron", "winter", "Brazil", "gravity",
                     "otter", "marsh", "who", "what", "caffeine", "Apollo"]), min_size=1,
    max_size=6))
def test_span_selection_within_budget_and_no_repeated_sentence(ix, budget, words):
    res = ix.search(" ".join(words), budget=budget, router="shipped", strategy="spans")
    assert res.routing["strategy"] == "spans"
    assert sum(h.n_tokens for h in res.hits) <= budget
    seen: dict[str, list[tuple[int, int]]] = {}
    for h in res.hits:
        assert h.text == ix.snapshot.text(ix.snapshot.doc_index[h.doc_id])[h.start:h.end]
        for a, b in seen.get(h.doc_id, []):
            assert h.end <= a or b <= h.start, "a sentence was taken twice"
        seen.setdefault(h.doc_id, []).append((h.start, h.end))


def test_span_model_ships_and_is_used_by_eval(ix):
    from mograg.retrieval.spans import shipped_span_model

    model = shipped_span_model()
    assert model is not None and len(model.to_bytes()) < 5_000_000
    systems = evaluate(ix, QUESTIONS, budgets=(64,), strategies=("blend",)).results[0]["systems"]
    assert {"router:shipped+spans", "router:shipped+blend"} <= set(systems)


def test_spans_fall_back_to_blend_for_other_levels(tmp_path, shared_embedder):
    other = Index.create(tmp_path / "other", levels=[16, 48])
    other.add(docs()[:2])
    res = other.search("moon", budget=40, strategy="spans")
    assert sum(h.n_tokens for h in res.hits) <= 40 and res.hits


def test_tune_learns_only_what_departs_from_the_training_corpora_synthetic_bias():
    rng = np.random.default_rng(0)
    names = ["level:32", "level:64", "level:128"]
    xs = [rng.normal(size=(n, 4)) for n in (30, 300)]
    ys = [rng.uniform(size=(len(x), 3)) for x in xs]
    model = fit_model(xs, ys, names, [32, 64, 128])
    x, scores = rng.normal(size=(50, 4)), rng.uniform(size=(50, 3))
    shift = prior_shift(model, x, scores)
    # a corpus whose synthetic questions depart exactly as the training corpora's did: no change
    same = adapt(model, x, scores, baseline=shift)
    assert np.allclose(same.intercept, model.intercept) and same.meta["calibrated"]
    # uncalibrated, the prior moves by the shrunk shift
    moved = adapt(model, x, scores, kappa=50.0)
    assert np.allclose(moved.intercept - model.intercept, shift * 50 / 100)
    # the baseline averages corpora, each counting the same however many questions it has
    per = [prior_shift(model, a, b) for a, b in zip(xs, ys, strict=True)]
    assert np.allclose(synthetic_shift(model, xs, ys), (per[0] + per[1]) / 2, atol=1e-6)


def test_shipped_model_carries_the_synthetic_bias_tune_subtracts():
    model = shipped_model()
    assert model is not None
    shift = model.meta[SYNTHETIC_SHIFT]
    assert len(shift) == len(model.names) and np.all(np.isfinite(shift))
