"""Tests for mograg.retrieval.routers (labels, training, persistence) and mograg.eval.evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import FACTS
from mograg.errors import MogragError
from mograg.eval.evaluate import METRICS, collect, evaluate
from mograg.eval.questions import Question
from mograg.index.core import Index
from mograg.retrieval.router_training import soft_labels, train_ridge_router, train_router
from mograg.retrieval.routers import (
    EntropyRouter,
    TrainedRouter,
    features,
    load_router,
    save_router,
)
from mograg.retrieval.routing import granularity_names
from mograg.types import Document

LEVELS = [16, 32, 64]

TEXTS = FACTS


def question(qid: str, text: str, doc: str, evidence: str, answers: list[str]) -> Question:
    start = TEXTS[doc].index(evidence)
    return Question(qid, text, answers, [(doc, start, start + len(evidence))])


QUESTIONS = [
    question("q1", "Who was the first person to walk on the Moon?", "moon",
             "Neil Armstrong was the first person to walk on it.", ["Neil Armstrong"]),
    question("q2", "How much caffeine does a cup of coffee have?", "coffee",
             "A typical cup contains about ninety milligrams of caffeine.", ["ninety milligrams"]),
    question("q3", "How do river deltas form?", "rivers",
             "Rivers deposit sediment where they meet the sea. Deltas form when that sediment "
             "builds up faster than waves remove it.", ["sediment"]),
    question("q4", "Tell me about the Moon landing and what astronauts did there.", "moon",
             "Apollo 11 landed there in July 1969. Neil Armstrong was the first person to walk "
             "on it. Astronauts brought back rock samples for study.", ["Apollo 11"]),
    question("q5", "Which country grows the most coffee?", "coffee",
             "Brazil grows more coffee than any other country.", ["Brazil"]),
    question("q6", "What causes tides?", "moon",
             "Tides on Earth are caused mostly by its gravity.", ["gravity"]),
]


# --------------------------------------------------------------------------- soft labels
def test_softmax_labels():
    scores = np.array([[0.5, 0.5, 0.1], [0.0, 1.0, 0.2], [0.3, 0.3, 0.3]])
    y = soft_labels(scores)
    assert y.shape == scores.shape
    assert np.allclose(y.sum(axis=1), 1.0)
    assert np.all(y >= 0)
    assert y[0, 0] == pytest.approx(y[0, 1]) and y[0, 0] > y[0, 2]
    assert np.allclose(y[2], 1 / 3)
    assert np.argmax(y[1]) == 1
    # temperature: lower is sharper
    soft = soft_labels(scores, temperature=1.0)
    assert soft[1, 1] < y[1, 1]
    assert np.allclose(soft[1], np.exp(scores[1]) / np.exp(scores[1]).sum())


def test_mog_labels():
    y = soft_labels(np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.6], [0.2, 0.1, 0.0]]), "mog")
    assert y.tolist() == [[0.0, 0.8, 0.2], [0.8, 0.0, 0.2], [0.8, 0.2, 0.0]]
    assert soft_labels(np.array([[0.4], [0.0]]), "mog").tolist() == [[1.0], [1.0]]


def test_unknown_label_scheme():
    with pytest.raises(MogragError, match="label scheme"):
        soft_labels(np.zeros((2, 2)), "hard")


# --------------------------------------------------------------------------- training
def synthetic(n: int, seed: int, d: int = 6, g: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first column decides the best granularity (3 ordered bins)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    best = np.digitize(x[:, 0], [-0.5, 0.5])
    scores = rng.uniform(0.0, 0.4, size=(n, g))
    scores[np.arange(n), best] = 1.0
    return x, scores


NAMES3 = ["level:32", "level:64", "level:128"]


@pytest.mark.parametrize("model", ["mlp", "softmax"])
@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_train_router_learns_known_rule(model, loss):
    x, scores = synthetic(400, seed=1)
    y = soft_labels(scores)
    r = train_router(x[:300], y[:300], NAMES3, model=model, loss=loss, seed=0, l2=1e-3,
                     hidden=16, max_iter=120)
    pred = r.predict(x[300:])
    assert pred.shape == (100, 3)
    assert np.allclose(pred.sum(axis=1), 1.0)
    acc = float((pred.argmax(axis=1) == scores[300:].argmax(axis=1)).mean())
    assert acc > 0.9, acc
    assert r.meta["n_train"] == 300 and r.meta["final_loss"] >= 0


def test_ridge_router_learns_known_rule():
    x, scores = synthetic(400, seed=2)
    r = train_ridge_router(x[:300], scores[:300], NAMES3, seed=0)
    pred = r.predict(x[300:])
    assert np.allclose(pred.sum(axis=1), 1.0)
    chosen = pred.argmax(axis=1)
    realised = scores[300:][np.arange(100), chosen].mean()
    best_fixed = scores[300:].mean(axis=0).max()
    assert realised > best_fixed + 0.2, (realised, best_fixed)
    again = TrainedRouter.from_bytes(r.to_bytes())
    assert np.allclose(again.predict(x[300:]), pred)


def test_ridge_router_falls_back_to_best_fixed_on_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 20))
    scores = rng.uniform(0.0, 1.0, size=(200, 3)) * np.array([0.6, 1.0, 0.6])
    r = train_ridge_router(x, scores, NAMES3, seed=0)
    assert r.meta["alpha"] >= 1000  # cross-validation picks strong shrinkage
    chosen = r.predict(rng.normal(size=(100, 20))).argmax(axis=1)
    assert (chosen == 1).mean() > 0.9


def test_prior_router_gives_every_query_the_mean_weights():
    x, scores = synthetic(200, seed=4)
    scores[:, 2] += 0.3  # granularity 2 is best on average
    r = train_ridge_router(x, scores, NAMES3, alpha=np.inf)
    pred = r.predict(np.random.default_rng(0).normal(size=(10, x.shape[1])))
    assert np.allclose(pred, pred[0]) and pred[0].argmax() == 2
    assert r.meta["kind"] == "prior"
    assert np.allclose(TrainedRouter.from_bytes(r.to_bytes()).predict(x[:3]), pred[:3])


def test_default_l2_learns_known_rule():
    x, scores = synthetic(300, seed=1)
    r = train_router(x[:200], soft_labels(scores[:200]), NAMES3, model="softmax", loss="ce")
    acc = float((r.predict(x[200:]).argmax(axis=1) == scores[200:].argmax(axis=1)).mean())
    assert acc > 0.9, (acc, r.meta["l2"])


def test_training_is_deterministic():
    x, scores = synthetic(60, seed=2)
    y = soft_labels(scores, "mog")
    kw = {"model": "mlp", "hidden": 8, "max_iter": 40}
    a = train_router(x, y, NAMES3, seed=7, **kw)  # l2 chosen by CV: also seeded
    b = train_router(x, y, NAMES3, seed=7, **kw)
    assert a.meta["l2"] == b.meta["l2"]
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])
    c = train_router(x, y, NAMES3, seed=8, l2=a.meta["l2"], **kw)
    assert not np.array_equal(a.params["W1"], c.params["W1"])


def test_train_router_errors():
    x, scores = synthetic(10, seed=3)
    y = soft_labels(scores)
    with pytest.raises(MogragError, match="model"):
        train_router(x, y, NAMES3, model="forest")
    with pytest.raises(MogragError, match="loss"):
        train_router(x, y, NAMES3, loss="mse")
    with pytest.raises(MogragError, match="at least 2"):
        train_router(x[:1], y[:1], NAMES3)


def test_constant_feature_does_not_break_training():
    x, scores = synthetic(60, seed=4)
    x[:, 3] = 5.0  # zero variance
    r = train_router(x, soft_labels(scores), NAMES3, model="softmax", l2=0.01)
    assert np.all(np.isfinite(r.predict(x)))


@pytest.mark.parametrize("model", ["mlp", "softmax"])
@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_bytes_round_trip(model, loss):
    x, scores = synthetic(80, seed=5)
    r = train_router(x, soft_labels(scores), NAMES3, name="rt", model=model, loss=loss, l2=0.1,
                     hidden=8, max_iter=40)
    back = TrainedRouter.from_bytes(r.to_bytes())
    assert (back.name, back.names, back.model, back.loss) == ("rt", NAMES3, model, loss)
    assert back.meta == r.meta
    assert np.array_equal(back.predict(x), r.predict(x))


# --------------------------------------------------------------------------- with an index
@pytest.fixture(scope="module")
def ix(tmp_path_factory, shared_embedder) -> Index:
    index = Index.create(tmp_path_factory.mktemp("router") / "ix", levels=LEVELS)
    index.add([Document(k, v) for k, v in TEXTS.items()])
    return index


@pytest.fixture(scope="module")
def col(ix):
    return collect(ix, QUESTIONS, budget=48)


def test_features_shape(ix, col):
    names = granularity_names(ix)
    assert names == [f"level:{s}" for s in LEVELS]
    assert col.features.shape == (len(QUESTIONS), 384 + 8 * len(names) + 1)
    assert np.all(np.isfinite(col.features))
    q = col.queries[0]
    assert np.array_equal(features(q, col.rankings[0]), col.features[0])


def test_entropy_router_weights(ix, col):
    names = granularity_names(ix)
    for i in range(len(QUESTIONS)):
        w = EntropyRouter().weights(ix, col.queries[i], col.rankings[i], names)
        assert w.shape == (len(names),)
        assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)


def trained_for(ix, col, name: str, seed: int = 0) -> TrainedRouter:
    targets = soft_labels(col.scores())
    return train_router(col.features, targets, col.names, name=name, model="softmax", seed=seed,
                        l2=1.0)


def test_save_and_load_router(ix, col):
    r = trained_for(ix, col, "mine")
    save_router(ix, r)
    assert (ix.root / "routers" / "mine.npz").exists()
    reopened = Index.open(ix.root)
    assert reopened.manifest["default_router"] == "mine"
    assert "mine" in reopened.info()["routers"]
    loaded = load_router(reopened, None)
    assert isinstance(loaded, TrainedRouter) and loaded.name == "mine"
    assert np.array_equal(loaded.predict(col.features), r.predict(col.features))
    res = reopened.search(QUESTIONS[0].question, budget=48)
    assert res.routing["router"] == "mine"
    names = granularity_names(reopened)
    expect = r.predict(col.features[0])[0]
    assert [res.routing["weights"][n] for n in names] == pytest.approx(expect, abs=1e-4)
    # "entropy" still selectable explicitly
    assert reopened.search(QUESTIONS[0].question, router="entropy").routing["router"] == "entropy"


def test_saved_router_visible_on_same_handle(ix, col):
    # regression: save_router must bump the generation so refresh() picks the router up
    save_router(ix, trained_for(ix, col, "same-handle"), make_default=False)
    assert "same-handle" in ix.manifest.get("routers", {})
    assert ix.search(QUESTIONS[0].question, router="same-handle").routing["router"] == (
        "same-handle"
    )


def test_retrained_router_replaces_cached_one(ix, col):
    # regression: a reader's router cache must not outlive a retrain under the same name
    reader = Index.open(ix.root)
    x = col.features
    first = trained_for(ix, col, "retrain", seed=0)
    save_router(ix, first, make_default=False)
    assert reader.refresh() is True
    assert np.array_equal(load_router(reader, "retrain").predict(x), first.predict(x))
    second = train_router(x, soft_labels(-col.scores()), col.names, name="retrain",
                          model="mlp", seed=3, l2=1.0, hidden=8, max_iter=30)
    save_router(ix, second, make_default=False)
    assert reader.refresh() is True
    assert np.array_equal(load_router(reader, "retrain").predict(x), second.predict(x))


def test_router_granularity_mismatch(ix, col):
    x = np.random.default_rng(0).normal(size=(10, col.features.shape[1]))
    wrong = train_router(x, soft_labels(np.eye(2)[np.arange(10) % 2]), ["level:1", "level:2"],
                         name="wrong", model="softmax", l2=1.0)
    save_router(ix, wrong, make_default=False)
    reopened = Index.open(ix.root)
    with pytest.raises(MogragError) as err:
        reopened.search(QUESTIONS[0].question, router="wrong")
    msg = str(err.value)
    assert "\n" not in msg and "level:1" in msg and "level:16" in msg
    with pytest.raises(MogragError, match="no router"):
        load_router(reopened, "never-saved")


# --------------------------------------------------------------------------- evaluate
SYSTEM_KEYS = {*METRICS, "p50_ms", "p99_ms"}


def test_evaluate_contract(ix):
    outcome = evaluate(ix, QUESTIONS, budgets=(24, 64), folds=2)
    assert [r["budget"] for r in outcome.results] == [24, 64]
    for res in outcome.results:
        assert res["questions"] == len(QUESTIONS) and res["mode"] == "hybrid"
        systems = res["systems"]
        levels = [f"level:{s}" for s in LEVELS]
        expected = {*levels, "best_fixed", "oracle", "router:entropy", "router:entropy+mix",
                    "router:entropy+blend", "router:cv-mlp", "router:cv-softmax"}
        assert expected <= set(systems)
        for name, s in systems.items():
            assert set(s) >= SYSTEM_KEYS, name
            for k in ("recall", "precision", "iou", "answer_recall", "mrr"):
                assert 0.0 <= s[k] <= 1.0, (name, k)
            assert 0 <= s["p50_ms"] <= s["p99_ms"]
        assert systems["best_fixed"]["level"] in levels
        best = systems["best_fixed"]["level"]
        assert systems["best_fixed"]["recall"] == max(systems[n]["recall"] for n in levels)
        assert systems["best_fixed"]["recall"] == systems[best]["recall"]
        for n in levels:
            assert systems["oracle"]["recall"] >= systems[n]["recall"], n
        assert sum(systems["router:entropy"]["chosen"].values()) == len(QUESTIONS)
    # retrieval works on this corpus: the big budget finds most evidence at some level
    assert outcome.results[1]["systems"]["oracle"]["recall"] > 0.8


def test_evaluate_with_saved_router(ix, col):
    save_router(ix, trained_for(ix, col, "evalme"), make_default=False)
    reopened = Index.open(ix.root)
    outcome = evaluate(reopened, QUESTIONS, budgets=(48,), routers=["evalme"],
                       strategies=("argmax",))
    systems = outcome.results[0]["systems"]
    assert "router:evalme" in systems and "router:evalme+mix" not in systems
    assert set(systems["router:evalme"]) >= SYSTEM_KEYS


def test_evaluate_without_questions(ix):
    with pytest.raises(MogragError, match="no valid questions"):
        evaluate(ix, [])


def test_default_strategy_is_the_same_everywhere():
    import inspect

    from mograg import types
    from mograg.answer import generate
    from mograg.cli import options
    from mograg.index.core import Index
    from mograg.retrieval import routing

    defaults = {
        options.DEFAULT_STRATEGY,
        types.DEFAULT_STRATEGY,
        inspect.signature(Index.search).parameters["strategy"].default,
        inspect.signature(routing.route_search).parameters["strategy"].default,
        inspect.signature(generate.answer).parameters["strategy"].default,
    }
    assert defaults == {"auto"}
