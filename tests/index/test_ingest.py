"""Parallel ingestion into the embedded store (worker processes, batched commits, resume)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirun import run
from corpus import FACTS, TOPICS, field_notes
from mograg.index.core import Index
from mograg.index.ingest import committed_hashes, ingest
from mograg.store.content_keys import doc_hash
from mograg.types import Document

LEVELS = [16, 32, 64]
DOCS = {**TOPICS, **FACTS, **{f"notes-{i}": field_notes(i, 12) for i in range(5)}}


def _docs() -> list[Document]:
    return [Document(k, v, {"title": k}) for k, v in DOCS.items()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, shared_embedder) -> Index:
    ix = Index.create(tmp_path_factory.mktemp("ref") / "ix", levels=LEVELS)
    ix.add(_docs())
    return ix


def _spans(ix: Index) -> dict[str, list[tuple[int, int, int]]]:
    """Every document's chunk spans at every level (what the index holds, order-free)."""
    snap = ix.snapshot
    out: dict[str, list[tuple[int, int, int]]] = {}
    for j in range(len(ix.levels)):
        for c in range(snap.n_chunks(j)):
            doc, start, end = snap.chunk_span(j, c)
            out.setdefault(snap.doc_ids[doc], []).append((j, start, end))
    return {k: sorted(v) for k, v in out.items()}


def test_workers_ingest_matches_add_and_resumes(tmp_path: Path, reference: Index) -> None:
    ix = Index.create(tmp_path / "ix", levels=LEVELS)
    rep = ingest(ix, _docs(), workers=1, batch_docs=3, commit_docs=5)
    assert (rep.added, rep.skipped, rep.workers) == (len(DOCS), 0, 1)
    assert rep.commits >= 2 and rep.staged_rows == 0  # the embedded store stages nothing
    reopened = Index.open(ix.root)
    assert sorted(reopened.snapshot.doc_ids) == sorted(DOCS)
    assert _spans(reopened) == _spans(reference)
    assert committed_hashes(reopened) == {k: doc_hash(k, v) for k, v in DOCS.items()}
    for q in ("what buried Pompeii", "Who walked on the Moon first?"):
        assert [h.to_dict() for h in reopened.search(q, budget=40, mode="bm25").hits] == [
            h.to_dict() for h in reference.search(q, budget=40, mode="bm25").hits]
        assert reopened.search(q, budget=40).hits[0].doc_id == reference.search(
            q, budget=40).hits[0].doc_id

    # a re-run skips everything committed; a changed text is replaced
    changed = [Document("cats", TOPICS["cats"] + " Cats also groom each other.", {})]
    again = ingest(reopened, [*_docs()[1:], *changed], workers=1, batch_docs=3)
    assert (again.skipped, again.added, again.replaced) == (len(DOCS) - 1, 0, 1)
    assert "groom" in Index.open(ix.root).search("do cats groom", budget=30).hits[0].text


def test_cli_index_with_workers(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in TOPICS.items()))
    code, out, err = run("index", src, "--index", tmp_path / "ix", "--levels", "16,32",
                         "--workers", "1", "--quiet")
    assert code == 0, err
    assert f"indexed {len(TOPICS)} document(s) ({len(TOPICS)} added, 0 replaced)" in out
    code, out, _ = run("search", "what buried Pompeii", "--index", tmp_path / "ix", "--json")
    assert code == 0 and json.loads(out)["hits"][0]["doc_id"] == "volcano"


def test_ingest_cli_takes_the_index_creation_options(tmp_path: Path, capsys) -> None:
    """``python -m mograg.index.ingest`` builds the same IndexSettings as ``mograg index``."""
    from mograg.index.ingest import main

    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in TOPICS.items()))
    root = tmp_path / "ix"
    args = [str(root), str(src), "--workers", "0", "--levels", "16,32", "--float16",
            "--level-vectors", "embed", "--graph", "--graph-radius", "2"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["added"] == len(TOPICS)
    m = Index.open(root).manifest
    assert (m["levels"], m["vector_dtype"], m["level_vectors"]) == ([16, 32], "float16", "embed")
    assert m["graph"]["max_radius"] == 2 and m["derived"]["graph"]
    # creation options that contradict the existing index: one line, exit 2
    assert main([str(root), str(src), "--workers", "0", "--levels", "16,64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "levels 16,32" in err and err.count("\n") == 1
