"""Request bodies of the JSON API (pydantic models; limits come from the app's settings).

Strict types: ``"budget": true`` or ``"budget": "5"`` is a 422, not 1 or 5.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from mograg.server.limits import MAX_ID_CHARS, MAX_TOP
from mograg.types import DEFAULT_STRATEGY, Mode, Strategy


@dataclass(frozen=True)
class RequestModels:
    """The request models of one app: ``search``, ``inspect``, ``document`` and ``documents``."""

    search: type[BaseModel]
    inspect: type[BaseModel]
    document: type[BaseModel]
    documents: TypeAdapter[Any]


def request_models(max_query_chars: int, max_budget: int) -> RequestModels:
    """Models whose fields are capped at ``max_query_chars`` and ``max_budget``."""
    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        query: str = Field(min_length=1, max_length=max_query_chars, description="The question.")
        budget: int = Field(256, ge=1, le=max_budget, description="Token budget of the context.")
        router: str | None = Field(
            None, max_length=200,
            description="Trained router name, 'entropy' or 'level:N' (default: the index's).",
        )
        mode: Mode = "hybrid"
        level: int | None = Field(None, ge=1, description="Search one level (size in tokens).")
        strategy: Strategy = DEFAULT_STRATEGY
        where: list[str] | None = Field(
            None, max_length=20,
            description="Metadata conditions: KEY=VALUE, KEY~VALUE (contains) or KEY^VALUE "
            "(starts with); keys: id, source, title, period or any metadata field.",
        )

    class InspectRequest(SearchRequest):
        top: int = Field(5, ge=1, le=MAX_TOP, description="Hits shown per level.")

    class DocumentIn(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
        text: str = Field(min_length=1)
        metadata: dict[str, Any] = Field(default_factory=dict)

    docs_adapter = TypeAdapter(list[DocumentIn])
    return RequestModels(search=SearchRequest, inspect=InspectRequest, document=DocumentIn,
                         documents=docs_adapter)


def takes(model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route's ``req`` body as ``model`` (a model built per app, so FastAPI reads
    it from the annotation while the source annotates ``req: Any``)."""

    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__annotations__["req"] = model
        return fn

    return declare
