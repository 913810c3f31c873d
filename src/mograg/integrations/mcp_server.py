"""A Model Context Protocol server over one index (``pip install 'mograg[mcp]'``).

``mograg mcp --index DIR`` serves it over stdio (what desktop agents launch) or over
streamable HTTP on loopback. Tools (typed input and output schemas):

- ``search``: exact spans filling a token budget, with the router's decision;
- ``ask``: an answer with citations (the generator configured as for ``mograg ask``;
  extractive when none is);
- ``list_documents``: document ids and titles, a page at a time;
- ``get_document``: a document's text (or a character range of it) and metadata.

Resources: ``mograg://index`` (the ``mograg info`` JSON) and ``mograg://documents/{doc_id}``
(a document's text).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
from pydantic import BaseModel, Field

from mograg.errors import MissingExtraError, MogragError
from mograg.integrations.spans import SearchOptions, open_index, page_of

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
    from mcp.types import ToolAnnotations
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("mcp", "mcp", "mograg mcp") from None

if TYPE_CHECKING:
    from mograg.config import GeneratorSettings
    from mograg.index.core import Index

Mode = Literal["hybrid", "dense", "bm25"]
Strategy = Literal["blend", "argmax", "mix"]
MAX_DOCUMENT_CHARS = 200_000  # one get_document reply; ask for a range beyond this
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
T = TypeVar("T")


async def _in_thread(work: Callable[[], T]) -> T:
    """Run blocking index work off the event loop; a user mistake becomes a tool error."""
    try:
        return await anyio.to_thread.run_sync(work)
    except MogragError as exc:
        raise ToolError(str(exc)) from None


class Span(BaseModel):
    """One retrieved span: ``text == document.text[start:end]``."""

    doc_id: str
    start: int = Field(description="character offset where the span starts in the document")
    end: int = Field(description="character offset where it ends (exclusive)")
    level: int = Field(description="chunk size in tokens the span was taken at")
    score: float
    n_tokens: int
    text: str
    title: str | None = None
    page: int | None = Field(None, description="1-based page, when the document records pages")


class Routing(BaseModel):
    """How the granularity was chosen for the query."""

    router: str
    strategy: str | None = None
    weights: dict[str, float] = Field(default_factory=dict)
    chosen: list[str | int] = Field(default_factory=list)


class SearchOutput(BaseModel):
    """The spans retrieved for a query."""

    query: str
    budget: int
    n_tokens: int = Field(description="tokens used of the budget")
    hits: list[Span]
    routing: Routing


class Citation(BaseModel):
    """A source the answer cites as ``[n]``."""

    n: int
    doc_id: str
    start: int
    end: int
    text: str


class AskOutput(BaseModel):
    """An answer with the exact spans it cites."""

    question: str
    answer: str
    citations: list[Citation]
    routing: Routing
    generator: str


class DocumentEntry(BaseModel):
    """One document of the index."""

    id: str
    title: str | None = None
    chars: int


class DocumentList(BaseModel):
    """A page of the index's documents, in index order."""

    total: int
    offset: int
    documents: list[DocumentEntry]


class DocumentText(BaseModel):
    """A document's text from ``start`` to ``end`` and its metadata."""

    id: str
    start: int
    end: int
    length: int = Field(description="length of the whole document in characters")
    text: str
    metadata: dict[str, Any]


class MogragTools:
    """The tools' logic over one index directory (refreshed before each call)."""

    def __init__(self, index: str | os.PathLike[str] | Index,
                 generator: GeneratorSettings | None = None) -> None:
        self.index = open_index(index)
        self.generator_settings = generator
        self._generator: Any = None

    def _fresh(self) -> Index:
        self.index.refresh()  # pick up documents added by `mograg index` meanwhile
        return self.index

    def _routing(self, routing: dict[str, Any]) -> Routing:
        return Routing(router=str(routing.get("router", "")), strategy=routing.get("strategy"),
                       weights=routing.get("weights", {}), chosen=routing.get("chosen", []))

    def search(self, query: str, budget: int = 256, mode: Mode = "hybrid",
               router: str | None = None, strategy: Strategy = "blend",
               level: int | None = None) -> SearchOutput:
        """Retrieve spans for ``query`` (see the ``search`` tool)."""
        ix = self._fresh()
        options = SearchOptions(budget=budget, mode=mode, router=router, strategy=strategy,
                                level=level)
        result = options.search(ix, query)
        snap = ix.snapshot
        hits = []
        for h in result.hits:
            meta = snap.metadata(snap.doc_index[h.doc_id])
            hits.append(Span(doc_id=h.doc_id, start=h.start, end=h.end, level=h.level,
                             score=float(h.score), n_tokens=h.n_tokens, text=h.text,
                             title=meta.get("title") if isinstance(meta.get("title"), str)
                             else None, page=page_of(meta, h.start)))
        return SearchOutput(query=result.query, budget=budget, n_tokens=result.n_tokens,
                            hits=hits, routing=self._routing(result.routing))

    def ask(self, question: str, budget: int = 256, mode: Mode = "hybrid",
            router: str | None = None) -> AskOutput:
        """Answer ``question`` with citations (see the ``ask`` tool)."""
        from mograg.answer.generate import answer, make_generator

        if self._generator is None:
            self._generator = make_generator(self.generator_settings)
        out = answer(self._fresh(), question, self._generator, budget=budget, router=router,
                     mode=mode)
        return AskOutput(question=question, answer=out["answer"],
                         citations=[Citation(**{k: c[k] for k in Citation.model_fields})
                                    for c in out["citations"]],
                         routing=self._routing(out["routing"]), generator=out["generator"])

    def list_documents(self, offset: int = 0, limit: int = 100,
                       prefix: str | None = None) -> DocumentList:
        """A page of document ids (see the ``list_documents`` tool)."""
        snap = self._fresh().snapshot
        ids = [(i, d) for i, d in enumerate(snap.doc_ids) if not prefix or d.startswith(prefix)]
        page = ids[offset:offset + limit]
        docs = []
        for i, d in page:
            title = snap.metadata(i).get("title")
            docs.append(DocumentEntry(id=d, title=title if isinstance(title, str) else None,
                                      chars=len(snap.text(i))))
        return DocumentList(total=len(ids), offset=offset, documents=docs)

    def get_document(self, doc_id: str, start: int = 0, end: int | None = None) -> DocumentText:
        """A document's text or a range of it (see the ``get_document`` tool)."""
        snap = self._fresh().snapshot
        i = snap.doc_index.get(doc_id)
        if i is None:
            raise MogragError(f"no document {doc_id!r} in the index; list_documents shows ids")
        text = snap.text(i)
        stop = len(text) if end is None else min(end, len(text))
        start = max(0, start)
        if stop - start > MAX_DOCUMENT_CHARS:
            stop = start + MAX_DOCUMENT_CHARS
        return DocumentText(id=doc_id, start=start, end=max(start, stop), length=len(text),
                            text=text[start:stop], metadata=snap.metadata(i))

    def info_json(self) -> str:
        """``mograg info --json`` of the index."""
        info = self._fresh().info()
        info["path"] = Path(info["path"]).name
        return json.dumps(info, indent=2)


def create_server(index: str | os.PathLike[str] | Index,
                  generator: GeneratorSettings | None = None) -> MCPServer:
    """An MCP server exposing ``index`` through the tools and resources listed above."""
    tools = MogragTools(index, generator)
    server = MCPServer(
        name="mograg",
        instructions=(
            "Search a document index built by mograg. Use `search` to get exact passages "
            "(doc_id, start, end) that fill a token budget, `ask` for a cited answer, "
            "`list_documents` and `get_document` to browse."),
    )

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def search(
        query: Annotated[str, Field(description="the question or keywords")],
        budget: Annotated[int, Field(ge=1, le=100_000, description="tokens of context")] = 256,
        mode: Annotated[Mode, Field(description="hybrid = dense + BM25")] = "hybrid",
        router: Annotated[str | None, Field(
            description="entropy, a trained router's name, level:N or graph:N:r=R "
                        "(default: the index's)")] = None,
        strategy: Strategy = "blend",
        level: Annotated[int | None, Field(description="search one level only")] = None,
    ) -> SearchOutput:
        """Retrieve exact passages for a query, mixing chunk sizes to fill a token budget."""
        return await _in_thread(
            lambda: tools.search(query, budget, mode, router, strategy, level))

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def ask(
        question: Annotated[str, Field(min_length=1, description="the question")],
        budget: Annotated[int, Field(ge=1, le=100_000, description="tokens of context")] = 256,
        mode: Mode = "hybrid",
        router: str | None = None,
    ) -> AskOutput:
        """Answer a question from the index, citing the exact passages used."""
        return await _in_thread(
            lambda: tools.ask(question, budget, mode, router))

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def list_documents(
        offset: Annotated[int, Field(ge=0)] = 0,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
        prefix: Annotated[str | None, Field(description="only ids starting with this")] = None,
    ) -> DocumentList:
        """List the documents in the index (ids, titles, lengths), a page at a time."""
        return await _in_thread(lambda: tools.list_documents(offset, limit, prefix))

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def get_document(
        doc_id: Annotated[str, Field(description="a document id from search or list_documents")],
        start: Annotated[int, Field(ge=0, description="first character")] = 0,
        end: Annotated[int | None, Field(ge=0, description="end character (exclusive)")] = None,
    ) -> DocumentText:
        """Read a document's text (or the range start:end of it) and its metadata."""
        return await _in_thread(lambda: tools.get_document(doc_id, start, end))

    @server.resource("mograg://index", name="index", mime_type="application/json",
                     description="Counts and settings of the index (mograg info --json).")
    def index_info() -> str:
        return tools.info_json()

    @server.resource("mograg://documents/{doc_id}", name="document", mime_type="text/plain",
                     description="The full text of one document.")
    def document_text(doc_id: str) -> str:
        try:
            return tools.get_document(doc_id).text
        except MogragError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    return server


def run(index: str | os.PathLike[str], transport: Literal["stdio", "http"] = "stdio",
        host: str = "127.0.0.1", port: int = 8765,
        generator: GeneratorSettings | None = None) -> None:
    """Serve ``index`` over stdio or streamable HTTP (``http://host:port/mcp``)."""
    server = create_server(index, generator)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
