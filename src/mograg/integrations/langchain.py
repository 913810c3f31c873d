"""A LangChain retriever over a mograg index (``pip install 'mograg[langchain]'``).

>>> from mograg.integrations.langchain import MogragRetriever
>>> retriever = MogragRetriever("my-index", budget=512)
>>> docs = retriever.invoke("why did the trial stop?")

Each :class:`~langchain_core.documents.Document` holds exactly ``document.text[start:end]``;
its ``metadata`` gives the span (``doc_id``, ``start``, ``end``, ``level``, ``page`` when
known, ``score``) and the router's decision (``routing``); its ``id`` is ``doc_id:start-end``.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from mograg.errors import MissingExtraError
from mograg.integrations.spans import SearchOptions, open_index, span_id, span_metadata

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("langchain-core", "langchain", "The LangChain retriever") from None

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.types import SearchResult


class MogragRetriever(BaseRetriever):
    """Retrieve exact, mixed-granularity spans from a mograg index, filling a token budget.

    Args:
        index: an index directory or an open :class:`mograg.index.core.Index`.
        budget, mode, router, strategy, level: passed to every search (see
            :class:`~mograg.integrations.spans.SearchOptions`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    budget: int = 256
    mode: str = "hybrid"
    router: str | None = None
    strategy: str = "blend"
    level: int | None = None

    def __init__(self, index: str | os.PathLike[str] | Index, **kwargs: Any) -> None:
        # pydantic fills the fields declared above (mypy sees only BaseRetriever's __init__)
        super().__init__(index=open_index(index), **kwargs)  # type: ignore[call-arg]

    @property
    def options(self) -> SearchOptions:
        """The search arguments used for every query."""
        return SearchOptions(budget=self.budget, mode=self.mode, router=self.router,
                             strategy=self.strategy, level=self.level)

    def _documents(self, result: SearchResult) -> list[Document]:
        return [
            Document(id=span_id(hit), page_content=hit.text,
                     metadata=span_metadata(self.index, hit, result.routing))
            for hit in result.hits
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._documents(self.options.search(self.index, query))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        # search is CPU-bound numpy/onnxruntime work: keep the event loop free
        result = await asyncio.to_thread(self.options.search, self.index, query)
        return self._documents(result)
