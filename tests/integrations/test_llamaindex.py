"""The LlamaIndex retriever against the real llama-index-core, alone and in its query engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core", reason="needs pip install 'mograg[llamaindex]'")

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeRelationship

from corpus import FACTS, TOPICS
from mograg.embed.embedders import Embedder
from mograg.index.core import Index
from mograg.integrations.llamaindex import MogragRetriever
from mograg.types import Document


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, shared_embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("li") / "ix"
    ix = Index.create(root, levels="32,64")
    ix.add([Document(k, v, {"title": k.title(), "page_starts": [0, 60]})
            for k, v in {**TOPICS, **FACTS}.items()])
    return root


def _check_spans(nodes: list, index: Index) -> None:
    assert nodes
    for n in nodes:
        m = n.node.metadata
        doc = index.snapshot.text(index.snapshot.doc_index[m["doc_id"]])
        assert n.node.get_content() == doc[m["start"]:m["end"]]
        assert (n.node.start_char_idx, n.node.end_char_idx) == (m["start"], m["end"])
        assert m["level"] in index.levels
        assert m["page"] == (1 if m["start"] < 60 else 2)
        assert m["routing"]["router"]
        assert n.node.relationships[NodeRelationship.SOURCE].node_id == m["doc_id"]
        assert n.score == pytest.approx(m["score"])


def test_retrieve_from_path_returns_exact_spans(index_dir: Path) -> None:
    retriever = MogragRetriever(str(index_dir), budget=64)
    nodes = retriever.retrieve("what buried Pompeii")
    assert nodes[0].node.metadata["doc_id"] == "volcano"
    assert "Pompeii" in " ".join(n.node.get_content() for n in nodes)
    assert sum(n.node.metadata["n_tokens"] for n in nodes) <= 64
    _check_spans(nodes, retriever.index)
    assert retriever.last_routing == nodes[0].node.metadata["routing"]


def test_open_index_and_options_are_used(index_dir: Path) -> None:
    ix = Index.open(index_dir)
    retriever = MogragRetriever(ix, budget=256, level=64, mode="bm25")
    assert retriever.index is ix
    nodes = retriever.retrieve("which chess piece is strongest")
    assert nodes[0].node.metadata["doc_id"] == "chess"
    assert nodes[0].node.metadata["routing"] == {"router": "level:64", "chosen": ["level:64"]}


def test_async_matches_sync(index_dir: Path) -> None:
    retriever = MogragRetriever(index_dir, budget=64)
    sync = retriever.retrieve("how does yeast make dough rise")
    nodes = asyncio.run(retriever.aretrieve("how does yeast make dough rise"))
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in sync]
    _check_spans(nodes, retriever.index)


def test_llm_sees_text_and_title_not_offsets(index_dir: Path) -> None:
    node = MogragRetriever(index_dir, budget=32).retrieve("why do cats purr")[0].node
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert "title: Cats" in shown and "routing" not in shown and "start:" not in shown


def test_inside_query_engine_with_mock_llm(index_dir: Path) -> None:
    retriever = MogragRetriever(index_dir, budget=64)
    # without max_tokens MockLLM answers with the prompt it was given: the spans must be in it
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query("who walked on the Moon first")
    assert "Neil Armstrong" in str(response) and "title: Moon" in str(response)
    assert "routing" not in str(response)
    assert response.source_nodes[0].node.metadata["doc_id"] == "moon"
    _check_spans(response.source_nodes, retriever.index)
    aresponse = asyncio.run(engine.aquery("who walked on the Moon first"))
    assert [n.node.node_id for n in aresponse.source_nodes] == [
        n.node.node_id for n in response.source_nodes]


def test_bad_index_argument_is_one_clear_error(tmp_path: Path) -> None:
    from mograg.errors import MogragError

    with pytest.raises(MogragError, match="index"):
        MogragRetriever(tmp_path / "missing")
    with pytest.raises(TypeError, match="path or a mograg Index"):
        MogragRetriever(42)  # type: ignore[arg-type]
