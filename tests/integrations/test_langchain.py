"""The LangChain retriever against the real langchain-core, alone and inside a chain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("langchain_core", reason="needs pip install 'mograg[langchain]'")

from langchain_core.documents import Document as LcDocument
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from corpus import FACTS, TOPICS
from mograg.embed.embedders import Embedder
from mograg.index.core import Index
from mograg.integrations.langchain import MogragRetriever
from mograg.types import Document


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, shared_embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("lc") / "ix"
    ix = Index.create(root, levels="32,64")
    ix.add([Document(k, v, {"title": k.title(), "page_starts": [0, 60]})
            for k, v in {**TOPICS, **FACTS}.items()])
    return root


def _check_spans(docs: list[LcDocument], index: Index) -> None:
    assert docs
    for d in docs:
        m = d.metadata
        text = index.snapshot.text(index.snapshot.doc_index[m["doc_id"]])
        assert d.page_content == text[m["start"]:m["end"]]
        assert d.id == f"{m['doc_id']}:{m['start']}-{m['end']}"
        assert m["level"] in index.levels
        assert m["page"] == (1 if m["start"] < 60 else 2)
        assert m["title"] == m["doc_id"].title()
        assert m["routing"]["router"]


def test_invoke_from_path_returns_exact_spans(index_dir: Path) -> None:
    retriever = MogragRetriever(str(index_dir), budget=64)
    docs = retriever.invoke("what buried Pompeii")
    assert docs[0].metadata["doc_id"] == "volcano"
    assert "Pompeii" in " ".join(d.page_content for d in docs)
    assert sum(d.metadata["n_tokens"] for d in docs) <= 64
    _check_spans(docs, retriever.index)


def test_open_index_and_options_are_used(index_dir: Path) -> None:
    ix = Index.open(index_dir)
    retriever = MogragRetriever(ix, budget=256, level=64, mode="bm25")
    assert retriever.index is ix
    docs = retriever.invoke("which chess piece is strongest")
    assert docs[0].metadata["doc_id"] == "chess"
    assert docs[0].metadata["routing"] == {"router": "level:64", "chosen": ["level:64"]}


def test_async_and_batch_match_sync(index_dir: Path) -> None:
    retriever = MogragRetriever(index_dir, budget=64)
    sync = retriever.invoke("how does yeast make dough rise")
    docs = asyncio.run(retriever.ainvoke("how does yeast make dough rise"))
    assert [d.id for d in docs] == [d.id for d in sync]
    _check_spans(docs, retriever.index)
    batched = asyncio.run(retriever.abatch(["why do cats purr", "what buried Pompeii"]))
    assert [b[0].metadata["doc_id"] for b in batched] == ["cats", "volcano"]


def _format(docs: list[LcDocument]) -> str:
    return "\n\n".join(f"[{d.metadata['doc_id']}] {d.page_content}" for d in docs)


def test_inside_chain_with_fake_llm(index_dir: Path) -> None:
    retriever = MogragRetriever(index_dir, budget=64)
    seen: list[str] = []

    def record(prompt_value: object) -> object:
        seen.append(str(prompt_value))
        return prompt_value

    prompt = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}\nAnswer:")
    llm = FakeListLLM(responses=["Neil Armstrong [moon]"])
    chain = (
        {"context": retriever | _format, "question": RunnablePassthrough()}
        | prompt | RunnableLambda(record) | llm | StrOutputParser()
    )
    assert chain.invoke("who walked on the Moon first") == "Neil Armstrong [moon]"
    assert "[moon]" in seen[0] and "Neil Armstrong was the first person" in seen[0]


def test_inside_async_chat_chain_with_fake_chat_model(index_dir: Path) -> None:
    retriever = MogragRetriever(index_dir, budget=64)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context.\n{context}"), ("human", "{question}")])
    llm = FakeListChatModel(responses=["Vesuvius [volcano]"])
    chain = (
        {"context": retriever | _format, "question": RunnablePassthrough()}
        | prompt | llm | StrOutputParser()
    )
    assert asyncio.run(chain.ainvoke("what buried Pompeii")) == "Vesuvius [volcano]"
    context = asyncio.run((retriever | _format).ainvoke("what buried Pompeii"))
    assert context.startswith("[volcano]")


def test_bad_index_argument_is_one_clear_error(tmp_path: Path) -> None:
    from mograg.errors import MogragError

    with pytest.raises(MogragError, match="index"):
        MogragRetriever(tmp_path / "missing")
