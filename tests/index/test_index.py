"""Tests for mograg.index.core: create/add/delete/search, incremental segments, atomic commits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mograg.index.commit
import mograg.index.core
from corpus import TOPIC_QUERIES, TOPICS, field_notes
from mograg.errors import IndexFormatError, MogragError
from mograg.index.core import Index
from mograg.store.storage import MANIFEST
from mograg.types import Document

LEVELS = [8, 16, 32]

DOCS = TOPICS

QUERIES = TOPIC_QUERIES


def docs(*ids: str, texts: dict[str, str] | None = None) -> list[Document]:
    texts = texts or DOCS
    return [Document(i, texts[i]) for i in ids]




@pytest.fixture
def new_index(tmp_path, shared_embedder):
    def make(**kw) -> Index:
        kw.setdefault("levels", LEVELS)
        return Index.create(tmp_path / f"ix-{len(list(tmp_path.iterdir()))}", **kw)

    return make


@pytest.fixture(scope="module")
def full_index(tmp_path_factory, shared_embedder) -> Index:
    ix = Index.create(tmp_path_factory.mktemp("full") / "ix", levels=LEVELS, level_vectors="embed")
    ix.add(docs(*DOCS))
    return ix


def hits_of(ix: Index, query: str, **kw) -> list[dict]:
    return [h.to_dict() for h in ix.search(query, **kw).hits]


def all_texts(ix: Index) -> str:
    snap = ix.snapshot
    return "\n".join(t for j in range(len(ix.levels)) for t in snap.level_texts(j))


def segment_files(root: Path, name: str) -> dict[str, int]:
    d = root / "segments" / name
    return {p.name: p.stat().st_mtime_ns for p in d.iterdir()}


# --------------------------------------------------------------------------- basics
def test_search_finds_the_right_document(full_index):
    for mode in ("dense", "bm25", "hybrid"):
        for q, want in zip(QUERIES, DOCS, strict=True):
            hits = full_index.search(q, budget=40, mode=mode, router="level:16").hits
            assert hits, (mode, q)
            assert hits[0].doc_id == want, (mode, q, hits[0])


def test_hit_text_is_slice_of_document(full_index):
    for q in QUERIES:
        for h in full_index.search(q, budget=64).hits:
            assert h.text == DOCS[h.doc_id][h.start : h.end]


def test_info_counts(full_index):
    info = full_index.info()
    assert set(info) >= {
        "path", "levels", "documents", "chunks", "chunks_per_level", "sentences", "bytes",
        "corpus_bytes", "embedder", "dim", "vector_dtype", "level_vectors", "generation",
        "routers",
    }
    snap = full_index.snapshot
    assert info["levels"] == LEVELS
    assert info["documents"] == len(DOCS)
    assert info["chunks_per_level"] == {str(s): snap.n_chunks(j) for j, s in enumerate(LEVELS)}
    assert info["chunks"] == sum(info["chunks_per_level"].values())
    # coarser levels have fewer (or as many) chunks, at least one per document
    counts = [info["chunks_per_level"][str(s)] for s in LEVELS]
    assert counts == sorted(counts, reverse=True) and counts[-1] >= len(DOCS)
    assert info["sentences"] == len(snap.atoms) >= 4 * len(DOCS)
    assert info["corpus_bytes"] == sum(len(t.encode()) for t in DOCS.values())
    assert info["bytes"] > info["corpus_bytes"]
    assert info["dim"] == 384
    assert info["vector_dtype"] == "float32" and info["level_vectors"] == "embed"
    assert info["generation"] == 1
    assert info["routers"] == []
    json.dumps(info)  # JSON-ready


def test_reopen_gives_identical_results(full_index):
    again = Index.open(full_index.root)
    for q in QUERIES:
        for kw in ({}, {"mode": "bm25"}, {"mode": "dense", "level": 32},
                   {"strategy": "mix"}, {"strategy": "blend", "budget": 30}):
            assert hits_of(again, q, **kw) == hits_of(full_index, q, **kw)
    assert again.info() == full_index.info()


# --------------------------------------------------------------------------- writes
def test_upsert_delete_readd(new_index):
    ix = new_index()
    r = ix.add(docs("cats", "volcano"))
    assert (r.added, r.replaced) == (2, 0)
    assert "Pompeii" in all_texts(ix)
    gen = ix.manifest["generation"]

    new_text = {"volcano": "Zanzibar exports cloves and spices. Its old town is made of coral."}
    r = ix.add(docs("volcano", texts=new_text))
    assert (r.added, r.replaced) == (0, 1)
    assert ix.manifest["generation"] == gen + 1
    assert ix.info()["documents"] == 2
    texts = all_texts(ix)
    assert "Zanzibar" in texts and "Pompeii" not in texts and "magma" not in texts
    hits = ix.search("Zanzibar cloves", mode="bm25", router="level:8").hits
    assert hits[0].doc_id == "volcano" and "Zanzibar" in hits[0].text
    for h in ix.search("Vesuvius Pompeii magma lava", mode="bm25", budget=200).hits:
        assert "Pompeii" not in h.text and "magma" not in h.text
        assert h.text == (DOCS | new_text)[h.doc_id][h.start : h.end]

    r = ix.delete(["volcano", "nope"])
    assert r.deleted == 1 and r.missing == ["nope"]
    assert ix.snapshot.doc_ids == ["cats"]
    assert all(h.doc_id == "cats" for h in ix.search("Zanzibar", budget=200).hits)

    gen = ix.manifest["generation"]
    r = ix.delete(["nope"])  # nothing to delete: no new generation
    assert r.deleted == 0 and r.missing == ["nope"]
    assert ix.manifest["generation"] == gen

    r = ix.add(docs("volcano"))
    assert (r.added, r.replaced) == (1, 0)
    assert sorted(ix.snapshot.doc_ids) == ["cats", "volcano"]
    assert "Pompeii" in all_texts(ix) and "Zanzibar" not in all_texts(ix)


def test_duplicate_ids_in_one_batch_last_wins(new_index):
    ix = new_index()
    r = ix.add([Document("x", "First version of the text."), Document("x", "Second text.")])
    assert r.added == 1
    assert ix.snapshot.doc_ids == ["x"] and ix.snapshot.text(0) == "Second text."


def test_incremental_add_keeps_untouched_segments(new_index):
    ix = new_index()
    ix.add(docs("cats", "volcano"))
    (seg1,) = ix.manifest["segments"]
    before = segment_files(ix.root, seg1)
    ix.add(docs("bread"))
    seg1b, seg2 = ix.manifest["segments"]
    assert seg1b == seg1
    assert segment_files(ix.root, seg1) == before
    # replacing a document of segment 2 leaves segment 1 alone
    ix.add([Document("bread", "Sourdough uses a wild yeast starter instead of baker's yeast.")])
    assert seg1 in ix.manifest["segments"] and seg2 not in ix.manifest["segments"]
    assert segment_files(ix.root, seg1) == before
    assert not (ix.root / "segments" / seg2).exists()  # garbage collected
    # deleting from segment 1 rewrites it (keeping the other document), segment 3 untouched
    seg3 = next(s for s in ix.manifest["segments"] if s != seg1)
    ix.delete(["cats"])
    assert seg3 in ix.manifest["segments"] and seg1 not in ix.manifest["segments"]
    assert sorted(ix.snapshot.doc_ids) == ["bread", "volcano"]
    assert sorted(p.name for p in (ix.root / "segments").iterdir()) == sorted(
        ix.manifest["segments"]
    )


def test_vectors_reused_on_identical_text(new_index):
    ix = new_index(level_vectors="embed")
    r1 = ix.add(docs("cats", "volcano"))
    # a coarse chunk with a single child has the child's text: embedded once
    assert r1.embedded > 0 and r1.embedded + r1.reused <= r1.chunks
    vec_before = [np.array(v) for v in ix.snapshot.vectors[0]]
    r2 = ix.add(docs("cats"))  # same id, same text
    assert r2.replaced == 1
    assert r2.embedded == 0 and r2.reused > 0
    # same text under a new id: nothing embedded either
    r3 = ix.add([Document("cats-copy", DOCS["cats"])])
    assert r3.embedded == 0 and r3.reused == r3.chunks
    # changed text: only the new sentences are embedded, not the whole document
    changed = DOCS["volcano"] + " Iceland has many active volcanoes."
    r4 = ix.add([Document("volcano", changed)])
    assert 0 < r4.embedded < r4.chunks and r4.reused > 0
    # the reused vectors equal the originals
    snap = ix.snapshot
    c0 = snap.doc_ids.index("cats-copy")
    cat_rows = np.flatnonzero(snap.atoms["doc"][snap.levels[0]["first_atom"]] == c0)
    got = snap.chunk_vectors(0, cat_rows)
    assert np.allclose(got, vec_before[0][: len(cat_rows)])


def test_float16_vectors(new_index, full_index):
    ix = new_index(vector_dtype="float16", level_vectors="embed")
    ix.add(docs(*DOCS))
    assert ix.info()["vector_dtype"] == "float16"
    seg = ix.manifest["segments"][0]
    for j in range(len(LEVELS)):
        v = np.load(ix.root / "segments" / seg / f"vectors-{j}.npy")
        assert v.dtype == np.float16
        v32 = np.load(full_index.root / "segments" / full_index.manifest["segments"][0]
                      / f"vectors-{j}.npy")
        assert v.shape == v32.shape and np.allclose(v.astype(np.float32), v32, atol=2e-3)
    for q, want in zip(QUERIES, DOCS, strict=True):
        assert ix.search(q, budget=40, mode="dense").hits[0].doc_id == want


def test_pool_vectors(new_index):
    ix = new_index(level_vectors="pool")
    r = ix.add(docs(*DOCS))
    snap = ix.snapshot
    n = [snap.n_chunks(j) for j in range(len(LEVELS))]
    assert r.pooled == sum(n[1:])
    assert r.embedded <= n[0]
    assert ix.info()["level_vectors"] == "pool"
    seg = ix.manifest["segments"][0]
    for j in range(1, len(LEVELS)):
        kids = snap.chunk_vectors(j - 1, np.arange(n[j - 1]))
        parents = snap.chunk_vectors(j, np.arange(n[j]))
        sums = np.zeros_like(parents)
        np.add.at(sums, snap.levels[j - 1]["parent"], kids)
        expect = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        assert np.allclose(parents, expect, atol=1e-5)
        # pooled vectors have no content hash, so they are never offered for reuse
        assert not np.load(ix.root / "segments" / seg / f"hashes-{j}.npy").any()
    assert ix.search(QUERIES[1], budget=40, mode="dense", level=32).hits[0].doc_id == "volcano"


def test_embed_vectors_are_direct(full_index):
    snap = full_index.snapshot
    emb = full_index.embedder
    for j in range(len(LEVELS)):
        texts = snap.level_texts(j)[:3]
        direct = emb.embed(texts)
        assert np.allclose(snap.chunk_vectors(j, np.arange(len(texts))), direct, atol=1e-5)


def test_merge_policy(new_index, monkeypatch):
    monkeypatch.setattr(mograg.index.commit, "MAX_SEGMENTS", 3)
    ix = new_index()
    names = list(DOCS)
    for k, name in enumerate(names[:3]):
        ix.add(docs(name))
        assert len(ix.manifest["segments"]) == k + 1
    before = {q: hits_of(ix, q, budget=48) for q in QUERIES}
    r = ix.add(docs("chess"))  # a 4th segment would exceed the limit: merge into one
    assert len(ix.manifest["segments"]) == 1
    assert sorted(ix.snapshot.doc_ids) == sorted(DOCS)
    assert 0 < r.embedded <= r.chunks
    assert len(list((ix.root / "segments").iterdir())) == 1
    for q in QUERIES[:3]:
        # results over the first three documents only: chess cannot change them much,
        # but every returned span must still be exact
        for h in ix.search(q, budget=48).hits:
            assert h.text == DOCS[h.doc_id][h.start : h.end]
    for q in QUERIES[:3]:
        assert before[q][0]["doc_id"] == hits_of(ix, q, budget=48)[0]["doc_id"]
    # merged index answers exactly like a fresh one-batch index
    fresh = new_index()
    fresh.add(docs(*names))
    for q in QUERIES:
        got = hits_of(ix, q, budget=48, mode="dense", level=16)
        want = hits_of(fresh, q, budget=48, mode="dense", level=16)
        assert [(h["doc_id"], h["start"], h["end"]) for h in got] == [
            (h["doc_id"], h["start"], h["end"]) for h in want
        ]


def test_merge_keeps_a_dominant_segment(new_index, monkeypatch):
    monkeypatch.setattr(mograg.index.commit, "MAX_SEGMENTS", 3)
    ix = new_index()
    ix.add([Document(f"base-{i}", text) for i, text in enumerate(field_notes(7, 60).split("\n\n"))])
    base = ix.manifest["segments"][0]
    base_lexical = ix.root / "lexical" / ix.manifest["derived"]["lexical"] / base
    inode = (base_lexical / "level-0" / "rows.npy").stat().st_ino
    for name in ("cats", "chess", "volcano"):
        ix.add(docs(name))
    # 4 segments > 3: the small ones are merged, the big one is left as it is
    assert ix.manifest["segments"][0] == base and len(ix.manifest["segments"]) == 2
    lexical = ix.root / "lexical" / ix.manifest["derived"]["lexical"] / base
    assert (lexical / "level-0" / "rows.npy").stat().st_ino == inode  # not re-tokenized
    assert {"cats", "chess", "volcano"} <= set(ix.snapshot.doc_ids)
    hits = ix.search("Which piece moves diagonally in chess?", budget=48).hits
    assert hits and all(h.text == ix.snapshot.text(ix.snapshot.doc_index[h.doc_id])[h.start:h.end]
                        for h in hits)


def test_merge_with_replacement(new_index, monkeypatch):
    monkeypatch.setattr(mograg.index.commit, "MAX_SEGMENTS", 2)
    ix = new_index()
    ix.add(docs("cats", "chess"))
    ix.add(docs("volcano"))
    # cats' segment is rewritten (keeping chess) and bread is new: 3 segments > 2
    ix.add([Document("cats", "Tigers are the largest cats."), *docs("bread")])
    assert len(ix.manifest["segments"]) == 1
    assert sorted(ix.snapshot.doc_ids) == ["bread", "cats", "chess", "volcano"]
    snap = ix.snapshot
    assert snap.text(snap.doc_index["cats"]) == "Tigers are the largest cats."
    assert "purrs" not in all_texts(ix)


# --------------------------------------------------------------------------- errors
def one_line_error(exc: BaseException, *needles: str) -> None:
    msg = str(exc)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_create_over_existing(new_index):
    ix = new_index()
    with pytest.raises(MogragError) as err:
        Index.create(ix.root, levels=LEVELS)
    one_line_error(err.value, str(ix.root))
    assert Index.create(ix.root, levels=LEVELS, exist_ok=True).manifest == ix.manifest


def test_create_in_non_empty_dir_or_file(tmp_path, shared_embedder):
    d = tmp_path / "busy"
    d.mkdir()
    (d / "something.txt").write_text("x")
    with pytest.raises(MogragError) as err:
        Index.create(d, levels=LEVELS)
    one_line_error(err.value, str(d))
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(MogragError) as err:
        Index.create(f, levels=LEVELS)
    one_line_error(err.value, str(f))


@pytest.mark.parametrize(
    "kw", [{"levels": "3,8"}, {"vector_dtype": "int8"}, {"level_vectors": "mean"}]
)
def test_create_bad_options(tmp_path, shared_embedder, kw):
    with pytest.raises(MogragError) as err:
        Index.create(tmp_path / "ix", **({"levels": LEVELS} | kw))
    one_line_error(err.value)
    assert not (tmp_path / "ix" / MANIFEST).exists()


def test_open_missing(tmp_path):
    missing = tmp_path / "nothing-here"
    with pytest.raises(IndexFormatError) as err:
        Index.open(missing)
    one_line_error(err.value, str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MogragError) as err:
        Index.open(empty)
    one_line_error(err.value, str(empty))


def test_open_damaged_manifest(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(IndexFormatError) as err:
        Index.open(d)
    one_line_error(err.value, str(d))
    (d / MANIFEST).write_text(json.dumps({"format": 999}))
    with pytest.raises(IndexFormatError) as err:
        Index.open(d)
    one_line_error(err.value, str(d), "999")


def test_search_errors(full_index):
    with pytest.raises(MogragError) as err:
        full_index.search("cats", level=999)
    one_line_error(err.value, "999", "8, 16, 32")
    with pytest.raises(MogragError) as err:
        full_index.search("cats", router="level:999")
    one_line_error(err.value, "999")
    with pytest.raises(MogragError) as err:
        full_index.search("cats", router="level:big")
    one_line_error(err.value, "level:big")
    with pytest.raises(MogragError) as err:
        full_index.search("cats", budget=0)
    one_line_error(err.value, "budget")
    with pytest.raises(MogragError) as err:
        full_index.search("cats", mode="fuzzy")
    one_line_error(err.value, "fuzzy")
    with pytest.raises(MogragError) as err:
        full_index.search("cats", strategy="vote")
    one_line_error(err.value, "vote")
    with pytest.raises(MogragError) as err:
        full_index.search("cats", router="no-such-router")
    one_line_error(err.value, "no-such-router", str(full_index.root))


# --------------------------------------------------------------------------- atomicity
def test_crash_before_manifest_swap_keeps_previous_generation(new_index, monkeypatch):
    ix = new_index()
    ix.add(docs("cats", "volcano"))
    root = ix.root
    manifest_before = json.loads((root / MANIFEST).read_text())
    results_before = {q: hits_of(Index.open(root), q) for q in QUERIES}

    def crash(path, obj):
        raise OSError("simulated crash before the manifest swap")

    with monkeypatch.context() as mp:
        mp.setattr(mograg.index.commit, "atomic_write_json", crash)
        with pytest.raises(OSError, match="simulated crash"):
            ix.add(docs("bread"))
        with pytest.raises(OSError, match="simulated crash"):
            ix.delete(["cats"])
    # the new segment and BM25 directories were written but never committed
    segs_on_disk = {p.name for p in (root / "segments").iterdir()}
    assert len(segs_on_disk) > len(manifest_before["segments"])
    assert len(list((root / "lexical").iterdir())) > 1
    # the previous generation still opens and answers identically
    assert json.loads((root / MANIFEST).read_text()) == manifest_before
    reopened = Index.open(root)
    assert reopened.manifest["generation"] == manifest_before["generation"]
    assert sorted(reopened.snapshot.doc_ids) == ["cats", "volcano"]
    for q in QUERIES:
        assert hits_of(reopened, q) == results_before[q]
    # the handle that failed still works and the lock was released
    assert hits_of(ix, QUERIES[0]) == results_before[QUERIES[0]]
    # the next successful write collects the garbage
    ix.add(docs("chess"))
    live = ix.manifest
    assert {p.name for p in (root / "segments").iterdir()} == set(live["segments"])
    assert [p.name for p in (root / "lexical").iterdir()] == [live["derived"]["lexical"]]
    assert not list(root.glob(".*.tmp"))
    assert sorted(ix.snapshot.doc_ids) == ["cats", "chess", "volcano"]


def test_reader_sees_new_generation_after_refresh(new_index):
    ix = new_index()
    ix.add(docs("cats"))
    reader = Index.open(ix.root)
    assert reader.snapshot.doc_ids == ["cats"]
    ix.add(docs("volcano"))
    assert reader.snapshot.doc_ids == ["cats"]  # pinned to its generation
    assert reader.refresh() is True
    assert sorted(reader.snapshot.doc_ids) == ["cats", "volcano"]
    assert reader.refresh() is False


def test_open_reader_survives_concurrent_rewrite(new_index):
    ix = new_index()
    ix.add(docs("cats", "volcano"))
    reader = Index.open(ix.root)
    _ = reader.snapshot  # a reader holding the current generation (not yet searched)
    ix.delete(["volcano"])  # rewrites the only segment; GC removes the old directory
    hits = reader.search("what buried Pompeii", budget=40, mode="bm25", router="level:16").hits
    assert hits and hits[0].doc_id == "volcano"


def test_line_separators_in_ids_and_metadata_round_trip(new_index):
    ix = new_index()
    odd = {"title": "a\u2028b\x85c\x1cd\re", "n": 1}
    ix.add([Document("x\u2028y", "Rivers carry silt to the sea.", odd),
            Document("plain", "Glaciers carve valleys.")])
    again = Index.open(ix.root)
    assert again.snapshot.doc_ids == ["x\u2028y", "plain"]
    assert again.snapshot.metadata(0) == odd


def test_small_write_reuses_readers_and_reads_no_whole_index_tables(new_index):
    from unittest import mock

    import mograg.store.snapshot as snapshot_module

    ix = new_index()
    ix.add(docs("cats", "volcano"))
    ix.search("cats")  # a reader snapshot is open
    (seg1,) = ix.manifest["segments"]
    reader = ix.snapshot.segments[0]
    with mock.patch.object(snapshot_module, "concat_tables",
                           wraps=snapshot_module.concat_tables) as concat:
        ix.add(docs("bread"))
        assert concat.call_count == 0  # the write needed no concatenated tables
    assert ix.manifest["segments"][0] == seg1
    assert ix.snapshot.segments[0] is reader  # the unchanged segment was not read again
    fresh = Index.open(ix.root)
    for q in QUERIES:
        assert hits_of(ix, q) == hits_of(fresh, q)
    assert ix.info() == fresh.info()


def test_existing_vectors_by_key_equal_the_full_map(new_index):
    from mograg.index.segments import existing_vectors

    ix = new_index(level_vectors="embed")
    ix.add(docs("cats", "volcano"))
    ix.add(docs("bread"))
    full = existing_vectors(ix.snapshot)
    keys = list(full)
    wanted = {*keys[::3], b"\x00" * 16, keys[0][:8] + b"\x01" * 8}  # absent, shared prefix
    got = existing_vectors(ix.snapshot, wanted)
    assert set(got) == set(keys[::3])
    assert all(np.array_equal(got[k], full[k]) for k in got)
    assert existing_vectors(ix.snapshot, set()) == {}
