"""Several knowledge sources in one index: ``--source``, per-source offsets, and identity
for an index of one source."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from clirun import run
from corpus import FACTS, field_notes
from mograg.eval.tune import tune_index
from mograg.index.core import Index
from mograg.retrieval.granularity_model import SHIPPED_FILE, shipped_model
from mograg.retrieval.pooled import package_data
from mograg.retrieval.routers import load_router
from mograg.retrieval.routing import granularity_names, granularity_picks
from mograg.retrieval.sources import index_sources, query_shares
from mograg.retrieval.spans import (
    SHIPPED_SPAN_FILE,
    SpanModel,
    model_doc_rows,
    query_candidates,
    shipped_span_model,
    span_selection,
)
from mograg.types import Document

LEVELS = [32, 64, 128, 256, 512]
QUERY = "Who walked on the Moon in 1969?"


def docs(source: str | None = None, notes_source: str | None = None) -> list[Document]:
    def meta(title: str, src: str | None) -> dict[str, str]:
        return {"title": title, **({"collection": src} if src else {})}

    out = [Document(k, v, meta(k.capitalize(), source)) for k, v in FACTS.items()]
    out += [Document(f"notes-{s}", field_notes(s, 60), meta(f"Field notes {s}", notes_source))
            for s in range(3)]
    return out


def write_jsonl(path: Path, documents: list[Document]) -> Path:
    path.write_text("\n".join(json.dumps({"id": d.id, "text": d.text, "metadata": d.metadata})
                              for d in documents))
    return path


@pytest.fixture(scope="module")
def two(tmp_path_factory, shared_embedder) -> Index:
    """An index of two sources: the facts and the field notes."""
    ix = Index.create(tmp_path_factory.mktemp("two") / "ix", levels=LEVELS)
    ix.add(docs("facts", "notes"))
    return ix


# --------------------------------------------------------------------------- the CLI
def test_index_source_end_to_end(tmp_path, shared_embedder):
    all_docs = docs()
    facts = write_jsonl(tmp_path / "facts.jsonl", all_docs[:3])
    notes = all_docs[3:]
    notes[0] = replace(notes[0], metadata={**notes[0].metadata, "collection": "own"})
    notes_file = write_jsonl(tmp_path / "notes.jsonl", notes)
    root = tmp_path / "ix"
    assert run("index", facts, "--index", root, "--source", "papers", "--quiet")[0] == 0
    assert run("index", notes_file, "--index", root, "--quiet")[0] == 0  # records keep theirs
    code, out, err = run("info", "--index", root, "--json")
    assert code == 0, err
    assert json.loads(out)["sources"] == {"papers": 3, "own": 1, "": 2}
    code, out, _ = run("info", "--index", root)
    assert "papers: 3" in out
    code, out, _ = run("list", "--index", root, "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["moon"]["collection"] == "papers" and rows["notes-0"]["collection"] == "own"
    assert rows["notes-1"]["collection"] is None
    assert rows["moon"]["source"] == str(facts)  # the file path stays where it was
    code, out, _ = run("list", "--index", root)
    assert "source" in out.splitlines()[0] and "papers" in out
    code, out, _ = run("search", QUERY, "--index", root, "--where", "collection=papers",
                       "--json")
    assert code == 0
    assert {h["doc_id"] for h in json.loads(out)["hits"]} <= {"moon", "coffee", "rivers"}
    # --source wins over a record's own collection
    assert run("index", notes_file, "--index", root, "--source", "field", "--quiet")[0] == 0
    assert Index.open(root).info()["sources"] == {"field": 3, "papers": 3}


def test_bad_source_name_is_one_line(tmp_path, shared_embedder):
    facts = write_jsonl(tmp_path / "facts.jsonl", docs()[:1])
    code, _, err = run("index", facts, "--index", tmp_path / "ix", "--source", "  ")
    assert code != 0
    assert err.strip().count("\n") == 0 and "--source" in err
    assert not (tmp_path / "ix" / "manifest.json").exists()


# --------------------------------------------------------------------------- per source
def test_sources_and_query_shares(two):
    snap = two.snapshot
    srcs = index_sources(snap)
    assert srcs.names == ("facts", "notes") and srcs.several
    assert [srcs.names[r] for r in srcs.of_doc] == ["facts"] * 3 + ["notes"] * 3
    assert srcs.rows_for(("notes", "other")).tolist() == [-1] * 3 + [0] * 3
    ranking = two.rank(two.encode_queries([QUERY])[0], "hybrid")[0]
    shares = query_shares(snap, ranking.ids, ("facts", "notes"))
    assert shares.sum() == pytest.approx(1.0) and shares[0] > 0
    assert query_shares(snap, ranking.ids, ("elsewhere",)).tolist() == [0.0]


def test_span_scores_move_per_source(two):
    model = shipped_span_model()
    assert model is not None
    q = two.encode_queries([QUERY])[0]
    rankings = two.rank(q, "hybrid")
    per = [granularity_picks(two, q, rankings, n) for n in granularity_names(two)]
    cands = query_candidates(two, q, rankings, per)
    rows = model_doc_rows(two.snapshot, model)
    assert rows is None  # the shipped model has no per-source offsets
    offset = np.zeros((2, len(LEVELS)))
    offset[1, 3] = 5.0  # notes at level 256
    per_source = replace(model, source_offset=offset, sources=("facts", "notes"))
    rows = model_doc_rows(two.snapshot, per_source)
    moved = per_source.score(cands, rows) - model.score(cands)
    src = rows[cands.doc]
    want = np.where((src == 1) & (cands.level == 3), 5.0, 0.0)
    assert np.allclose(moved, want)
    picks = span_selection(two, q, rankings, per, per_source)
    assert picks and (picks[0].level, two.snapshot.chunk_span(picks[0].level, picks[0].chunk)[0]
                      ) in {(3, d) for d in range(3, 6)}
    # round trip; a model for other sources leaves every score alone
    again = SpanModel.from_bytes(per_source.to_bytes())
    assert again.sources == ("facts", "notes") and np.array_equal(again.source_offset, offset)
    other = replace(per_source, sources=("x", "y"))
    assert np.allclose(other.score(cands, model_doc_rows(two.snapshot, other)),
                       model.score(cands))


def test_tune_weights_each_source_when_asked(two):
    plain = tune_index(two, n=6, name="plain")  # by default: as for one source
    assert "sources" not in plain and plain["questions"] <= 6
    blind = load_router(two, "plain")
    assert not blind.span_model.source_offset.size and not blind.model.source_intercept.size
    summary = tune_index(two, n=6, name="tuned", per_source=True)
    assert set(summary["sources"]) == {"facts", "notes"}
    assert summary["questions"] > 6  # drawn from each source
    router = load_router(two, "tuned")
    assert router.span_model.sources == ("facts", "notes")
    assert router.span_model.source_offset.shape == (2, len(LEVELS))
    assert router.model.source_intercept.shape == (2, len(granularity_names(two)))
    assert np.abs(router.span_model.source_offset).sum() > 0
    res = two.search(QUERY, budget=64)
    assert res.routing["router"] == "tuned" and res.hits


# --------------------------------------------------------------------------- one source
def test_shipped_models_keep_their_bytes():
    assert shipped_span_model().to_bytes() == package_data(SHIPPED_SPAN_FILE)
    assert shipped_model().to_bytes() == package_data(SHIPPED_FILE)


def test_one_named_source_is_the_same_as_none(tmp_path, shared_embedder):
    plain = Index.create(tmp_path / "plain", levels=LEVELS)
    plain.add(docs())
    named = Index.create(tmp_path / "named", levels=LEVELS)
    named.add(docs("only", "only"))
    assert not index_sources(named.snapshot).several
    for q in (QUERY, "what do otters eat in winter", "coffee caffeine"):
        a, b = plain.search(q, budget=128), named.search(q, budget=128)
        assert a.routing == b.routing
        assert [(h.doc_id, h.start, h.end) for h in a.hits] == [
            (h.doc_id, h.start, h.end) for h in b.hits]
    tune_index(plain, n=8, name="tuned")
    tune_index(named, n=8, name="tuned")
    for key in ("file", "span_file"):
        pa = plain.root / plain.manifest["routers"]["tuned"][key]
        pb = named.root / named.manifest["routers"]["tuned"][key]
        assert pa.read_bytes() == pb.read_bytes()


def test_train_router_shipped_per_source(two, tmp_path):
    def question(qid: str, text: str, doc: str, evidence: str) -> dict[str, object]:
        start = two.snapshot.text(two.snapshot.doc_index[doc]).index(evidence)
        return {"id": qid, "question": text, "answers": [],
                "evidence": [{"doc_id": doc, "start": start, "end": start + len(evidence)}]}

    qs = [question("q1", "Who first walked on the Moon?", "moon",
                   "Neil Armstrong was the first person to walk on it."),
          question("q2", "How much caffeine is in a cup?", "coffee",
                   "A typical cup contains about ninety milligrams of caffeine."),
          question("q3", "what does observation 1-3 note", "notes-1", "observation 1-3 notes.")]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in qs))
    code, out, err = run("train-router", "--index", two.root, "--questions", path,
                         "--model", "shipped", "--name", "labelled", "--per-source")
    assert code == 0, err
    assert "shipped models adapted, per source" in out
    router = load_router(Index.open(two.root), "labelled")
    assert router.span_model.sources == ("facts", "notes")
    assert router.model.source_intercept.shape[0] == 2
