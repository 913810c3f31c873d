"""An index written by the previous release (commit f86bd30, before the sub-packages) opens
and answers exactly as it did then.

The fixture (``tests/fixtures/index-f86bd30``, ~220 KB) and its ``expected.json`` were made by
``tests/fixtures/make_index_fixture.py`` run against that commit: three levels, a MoGG graph,
two segments and a rewritten one. The intended differences: a fixed-level search now reports
its granularity by name in ``routing.chosen`` (``["level:16"]``, was ``[16]``), ``info``
gained ``search_router``, and the budget is a maximum (issue 13): candidates below the
relevance floor or repeating another document are left out (the best span overlaps the one
then; the rest of the budget may differ).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mograg.index.core import Index

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "index-f86bd30"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> Index:
    root = tmp_path_factory.mktemp("old") / "index"
    shutil.copytree(FIXTURE / "index", root)  # reads only, but never touch the fixture
    return Index.open(root)


def _named_chosen(result: dict) -> dict:
    routing = result.get("routing", {})
    if "strategy" not in routing:  # a fixed granularity: chosen was the level size
        routing["chosen"] = [c if isinstance(c, str) else f"level:{c}" for c in routing["chosen"]]
    return result


def test_searches_answer_as_before(old: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    from mograg.retrieval import prune

    monkeypatch.setattr(prune, "FLOOR", -1.0)  # as then: no relevance floor, no folding
    monkeypatch.setattr(prune, "DUPLICATE_SHARE", 2.0)
    for case in EXPECTED["searches"]:
        got = old.search(case["query"], **case["kwargs"]).to_dict()
        assert got == _named_chosen(case["result"]), (case["query"], case["kwargs"])


def test_pruned_searches_keep_the_best_span(old: Index) -> None:
    for case in EXPECTED["searches"]:
        got = old.search(case["query"], **case["kwargs"]).to_dict()
        then = case["result"]["hits"]
        assert got["hits"] and got["n_tokens"] <= got["budget"], case["query"]
        best, was = got["hits"][0], then[0]
        assert best["doc_id"] == was["doc_id"], case["query"]
        assert best["start"] < was["end"] and was["start"] < best["end"], case["query"]


def test_rankings_are_identical(old: Index) -> None:
    """The same chunks and BM25 scores; dense similarities within float32 rounding:
    all levels are ranked in one pass, pooled levels' similarities from the level
    below's (issue 14), so a value may round the other way at the sixth decimal."""
    for case in EXPECTED["rankings"]:
        query = old.encode_queries([case["query"]])[0]
        got = old.rank(query, case["mode"])
        for r, want in zip(got, case["levels"], strict=True):
            assert r.ids.tolist() == want["ids"], (case["query"], case["mode"])
            assert [round(float(s), 6) for s in r.bm25] == want["bm25"]
            # fused scores are exact; in dense mode they are the similarities
            assert np.allclose(r.scores, want["scores"], rtol=0, atol=2e-6)
            assert np.allclose(r.dense, want["dense"], rtol=0, atol=2e-6)
        assert len(got) == len(case["levels"])


def test_info_is_unchanged(old: Index) -> None:
    info = old.info()
    info.pop("path")
    info.pop("bytes")
    # added since: which model a search uses (its levels are not the shipped model's)
    assert info.pop("search_router") == "entropy (the shipped model is made for other levels)"
    # added since (issue 15): an index written before approximate search has none
    assert info.pop("ann") is None
    # added since (issue 14): documents per knowledge source (none named)
    assert info.pop("sources") == {}
    assert not old.snapshot.uses_ann(0)
    assert info == EXPECTED["info"]
