"""Tests for mograg.store.ann: graph search per segment and level, persisted beside the
segments, equal to exact search on small indexes, deletes never returned, crash-safe."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mograg.index.commit
import mograg.index.core
from corpus import TOPIC_QUERIES, TOPICS, field_notes
from mograg.errors import MogragError
from mograg.index.core import Index
from mograg.index.migrate import enable_ann
from mograg.retrieval.rank import make_query, rank_level
from mograg.store.ann import AnnIndex, AnnSettings, level_path, rows_path, stores
from mograg.store.lexical_top import top_n, top_positive
from mograg.store.storage import MANIFEST
from mograg.types import Document

pytest.importorskip("usearch")

LEVELS = [8, 16, 32]
FORCED = AnnSettings(min_rows=1)  # every level of every segment gets a graph


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_graph_matches_exact_top_k_and_survives_save_and_view(tmp_path, dtype):
    data, queries = unit(2000, 0), unit(20, 1)
    graph = AnnIndex.build(data, AnnSettings(min_rows=1, dtype=dtype))
    path = tmp_path / "level-0.usearch"
    graph.save(path)
    assert not list(tmp_path.glob(".*.tmp"))
    viewed = AnnIndex.open(path, 32, AnnSettings(dtype=dtype))
    overlap = []
    for q in queries:
        exact = set(np.argsort(-(data @ q))[:10].tolist())
        rows, sims = viewed.search(q, 10)
        assert len(rows) == 10 and np.all(np.diff(sims) <= 1e-3)
        overlap.append(len(exact & set(rows.tolist())) / 10)
    assert np.mean(overlap) >= 0.9


def test_concurrent_searches_match_serial_ones(tmp_path):
    # the server searches from a thread pool: one memory-mapped graph, several threads
    data, queries = unit(5000, 3), unit(100, 4)
    path = tmp_path / "g.usearch"
    AnnIndex.build(data, FORCED).save(path)
    graph = AnnIndex.open(path, 32, FORCED)
    want = [graph.search(q, 20)[0].tolist() for q in queries]
    got: dict[int, list[list[int]]] = {}

    def run(k: int) -> None:
        got[k] = [graph.search(q, 20)[0].tolist() for q in queries]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[k] == want for k in range(4))


def test_deleted_rows_are_never_returned():
    data = unit(500, 2)
    graph = AnnIndex.build(data, FORCED)
    q = data[7]
    deleted = np.zeros(len(data), bool)
    deleted[np.argsort(-(data @ q))[:300]] = True  # the 300 best rows are gone
    rows, _ = graph.search(q, 50, deleted=deleted)
    assert len(rows) == 50 and not deleted[rows].any()
    rows, _ = graph.search(q, 400, deleted=deleted)
    # asked for more than remain: every live row the graph's walk reaches, never a deleted one
    assert 150 <= len(rows) <= 200 and len(set(rows.tolist())) == len(rows)
    assert not deleted[rows].any()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5]), min_size=1, max_size=60),
       st.integers(1, 70))
def test_bm25_top_among_positive_scores_equals_top_of_all(values, n):
    scores = np.array(values, np.float32)
    assert top_positive(scores, n).tolist() == top_n(scores, n).tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([-np.inf, 0.0, 0.5, 1.0, 2.5, np.inf]), max_size=80),
       st.integers(0, 90))
def test_top_n_breaks_every_tie_by_lower_position(values, n):
    # also at the n-th score: of the chunks tied there, the lowest positions are kept
    scores = np.array(values, np.float32)
    want = np.lexsort((np.arange(len(scores)), -scores))[:n]
    assert top_n(scores, n).tolist() == want.tolist()


def test_unknown_settings_are_one_line_errors():
    with pytest.raises(MogragError, match="invalid ann dtype 'f8'"):
        AnnSettings(dtype="f8")
    with pytest.raises(MogragError, match="unknown ann library"):
        AnnSettings.from_dict({"library": "annoy"})


def docs_of(n: int) -> list[Document]:
    return [Document(f"notes-{i}", field_notes(i, 6)) for i in range(n)] + [
        Document(k, v) for k, v in TOPICS.items()
    ]


@pytest.fixture
def forced(tmp_path, shared_embedder):
    ix = Index.create(tmp_path / "ann", levels=LEVELS, ann=FORCED)
    ix.add(docs_of(12))
    return ix


def test_forced_graphs_rank_like_exact(forced, monkeypatch):
    snap = forced.snapshot
    assert all(snap.uses_ann(j) for j in range(len(LEVELS)))
    assert forced.info()["ann"]["min_rows"] == 1
    queries = [make_query(t, v) for t, v in
               zip(TOPIC_QUERIES, forced.embedder.embed(TOPIC_QUERIES), strict=True)]
    monkeypatch.setenv("MOGRAG_ANN", "off")
    exact = Index.open(forced.root)
    assert not exact.snapshot.uses_ann(0)
    for mode in ("dense", "hybrid"):
        for j in range(len(LEVELS)):
            for q in queries:
                a = rank_level(forced.backend, j, q, mode, 10)
                e = rank_level(exact.backend, j, q, mode, 10)
                assert len(set(a.ids.tolist()) & set(e.ids.tolist())) >= 9
                # the dense feature the routers see is exact either way
                np.testing.assert_allclose(
                    a.dense, snap.chunk_vectors(j, a.ids) @ q.vector, rtol=1e-5, atol=1e-6)
    for q in TOPIC_QUERIES:
        top = forced.search(q, budget=64).hits[0]
        assert top.doc_id == exact.search(q, budget=64).hits[0].doc_id


def test_deleted_documents_never_come_back(forced):
    forced.delete([f"notes-{i}" for i in range(6)] + ["cats"])
    snap = forced.snapshot
    assert snap.uses_ann(0)
    q = make_query("why do cats purr", forced.embedder.embed(["why do cats purr"])[0])
    for j in range(len(LEVELS)):
        ids = rank_level(forced.backend, j, q, "dense", 1000).ids
        assert len(ids) == snap.n_chunks(j)  # the graph reaches every remaining chunk
        docs = {snap.doc_ids[snap.chunk_span(j, int(c))[0]] for c in ids}
        assert "cats" not in docs and not any(d in docs for d in ("notes-0", "notes-5"))


def test_a_delete_keeps_the_graph_with_tombstones(forced):
    root = forced.root
    seg = forced.manifest["segments"][0]
    old = level_path(root / "ann" / forced.manifest["derived"]["ann"], seg, 0)
    inode = old.stat().st_ino
    q = make_query("lava ash volcano", forced.embedder.embed(["lava ash volcano"])[0])
    for step, gone in enumerate((["volcano"], ["notes-3"])):
        forced.delete(gone)
        m = forced.manifest
        new = level_path(root / "ann" / m["derived"]["ann"], m["segments"][0], 0)
        assert new.stat().st_ino == inode  # inherited, not rebuilt
        key_rows = np.load(rows_path(new))
        assert (key_rows < 0).sum() > step  # the second delete adds to the first's tombstones
        snap = forced.snapshot
        for j in range(len(LEVELS)):
            ids = rank_level(forced.backend, j, q, "dense", 1000).ids
            assert sorted(ids.tolist()) == list(range(snap.n_chunks(j)))
            assert not {"volcano", *gone} & {snap.doc_ids[snap.chunk_span(j, int(c))[0]]
                                             for c in ids}
        exact = rank_level(forced.backend, 0, q, "dense", 5)
        assert exact.dense[0] == pytest.approx(float(np.max(
            snap.chunk_vectors(0, np.arange(snap.n_chunks(0))) @ q.vector)), abs=1e-6)


def test_unchanged_segments_are_hard_linked_not_rebuilt(forced):
    root = forced.root
    first = forced.manifest["segments"][0]
    old = level_path(root / "ann" / forced.manifest["derived"]["ann"], first, 0)
    inode = old.stat().st_ino
    forced.add([Document("extra", field_notes(99, 3))])
    m = forced.manifest
    assert first in m["segments"] and len(m["segments"]) == 2
    new = level_path(root / "ann" / m["derived"]["ann"], first, 0)
    assert new.stat().st_ino == inode  # same file: not rebuilt
    assert level_path(root / "ann" / m["derived"]["ann"], m["segments"][1], 0).exists()
    assert [p.name for p in (root / "ann").iterdir()] == [m["derived"]["ann"]]


def test_new_graph_settings_rebuild_the_graphs_instead_of_linking_them(tmp_path,
                                                                       shared_embedder):
    ix = Index.create(tmp_path / "f16", levels=LEVELS, ann=AnnSettings(min_rows=1, dtype="f16"))
    ix.add(docs_of(4))

    def graphs(index: Index) -> list:
        return sorted((index.root / "ann" / index.manifest["derived"]["ann"]).glob("*/*.usearch"))

    assert [stores(p, "f16") for p in graphs(ix)] == [True] * len(LEVELS)
    enable_ann(ix, FORCED)  # the default dtype, int8
    assert ix.manifest["ann"]["dtype"] == "i8"
    assert [stores(p, "i8") for p in graphs(ix)] == [True] * len(LEVELS)
    assert Index.open(ix.root).search("volcano lava").hits


def test_crash_before_manifest_swap_keeps_previous_graphs(forced, monkeypatch):
    root = forced.root
    before = json.loads((root / MANIFEST).read_text())
    expected = [h.to_dict() for h in Index.open(root).search("volcano lava").hits]

    def crash(path, obj):
        raise OSError("simulated crash before the manifest swap")

    with monkeypatch.context() as mp:
        mp.setattr(mograg.index.commit, "atomic_write_json", crash)
        with pytest.raises(OSError, match="simulated crash"):
            forced.add([Document("bread2", TOPICS["bread"] + " Rye bread is dense.")])
    assert len(list((root / "ann").iterdir())) == 2  # written, never committed
    reopened = Index.open(root)
    assert reopened.manifest == before and reopened.snapshot.uses_ann(0)
    assert [h.to_dict() for h in reopened.search("volcano lava").hits] == expected


def test_old_index_without_ann_settings_is_searched_exactly(tmp_path, shared_embedder):
    ix = Index.create(tmp_path / "old", levels=LEVELS, ann=False)
    ix.add(docs_of(3))
    assert "ann" not in ix.manifest and not (tmp_path / "old" / "ann").exists()
    expected = [h.to_dict() for h in ix.search("cats purr").hits]
    reopened = Index.open(ix.root)
    assert not reopened.snapshot.uses_ann(0)
    assert [h.to_dict() for h in reopened.search("cats purr").hits] == expected
    enable_ann(reopened, FORCED)  # an upgrade builds graphs from the stored vectors
    assert Index.open(ix.root).snapshot.uses_ann(0)
    assert Index.open(ix.root).search("cats purr").hits[0].to_dict() == expected[0]


def test_threshold_keeps_small_levels_exact(tmp_path, shared_embedder, monkeypatch):
    monkeypatch.setenv("MOGRAG_ANN_MIN_ROWS", "100")
    ix = Index.create(tmp_path / "t", levels=LEVELS)
    ix.add(docs_of(12))
    snap = ix.snapshot
    used = [snap.uses_ann(j) for j in range(len(LEVELS))]
    sizes = [snap.n_chunks(j) for j in range(len(LEVELS))]
    assert used == [n >= 100 for n in sizes] and used[0] and not used[-1]
    monkeypatch.setenv("MOGRAG_ANN_MIN_ROWS", "lots")
    with pytest.raises(MogragError, match="MOGRAG_ANN_MIN_ROWS='lots' is not a number"):
        Index.create(tmp_path / "u", levels=LEVELS)
    assert os.environ["MOGRAG_ANN_MIN_ROWS"] == "lots"
