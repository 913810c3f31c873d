"""A LlamaIndex retriever over a mograg index (``pip install 'mograg[llamaindex]'``).

>>> from mograg.integrations.llamaindex import MogragRetriever
>>> retriever = MogragRetriever("my-index", budget=512)
>>> nodes = retriever.retrieve("why did the trial stop?")

Each :class:`~llama_index.core.schema.NodeWithScore` wraps a ``TextNode`` whose text is
exactly ``document.text[start:end]``; its ``start_char_idx``/``end_char_idx`` and its
metadata give the span (``doc_id``, ``start``, ``end``, ``level``, ``page`` when known) and the
router's decision (``routing``). Only ``doc_id``, ``title`` and ``page`` are shown to the LLM.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from mograg.errors import MissingExtraError
from mograg.integrations.spans import SearchOptions, open_index, span_id, span_metadata

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import (
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("llama-index-core", "llamaindex", "The LlamaIndex retriever") from None

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.types import SearchResult

# metadata the LLM sees next to each span; the rest (offsets, scores, routing) is for code
_SHOWN_TO_LLM = ("doc_id", "title", "page", "section")


class MogragRetriever(BaseRetriever):
    """Retrieve exact, mixed-granularity spans from a mograg index, filling a token budget.

    Args:
        index: an index directory or an open :class:`mograg.index.core.Index`.
        budget, mode, router, strategy, level: passed to every search (see
            :class:`~mograg.integrations.spans.SearchOptions`).
        callback_manager: LlamaIndex callbacks.
    """

    def __init__(
        self,
        index: str | os.PathLike[str] | Index,
        budget: int = 256,
        mode: str = "hybrid",
        router: str | None = None,
        strategy: str = "blend",
        level: int | None = None,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        self.index = open_index(index)
        self.options = SearchOptions(budget=budget, mode=mode, router=router,
                                     strategy=strategy, level=level)
        self.last_routing: dict[str, Any] = {}
        super().__init__(callback_manager=callback_manager, **kwargs)

    def _nodes(self, result: SearchResult) -> list[NodeWithScore]:
        self.last_routing = dict(result.routing)
        out = []
        for hit in result.hits:
            meta = span_metadata(self.index, hit, result.routing)
            node = TextNode(
                id_=span_id(hit),
                text=hit.text,
                metadata=meta,
                start_char_idx=hit.start,
                end_char_idx=hit.end,
                excluded_llm_metadata_keys=[k for k in meta if k not in _SHOWN_TO_LLM],
                excluded_embed_metadata_keys=list(meta),
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
            )
            out.append(NodeWithScore(node=node, score=float(hit.score)))
        return out

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(self.options.search(self.index, query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # search is CPU-bound numpy/onnxruntime work: keep the event loop free
        result = await asyncio.to_thread(self.options.search, self.index, query_bundle.query_str)
        return self._nodes(result)
