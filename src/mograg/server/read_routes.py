"""Read endpoints: ``POST /search``, ``GET|POST /api/inspect``, ``GET /documents/{id}``,
``GET /info`` and ``GET /health``."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from mograg.server.extensions import ServerContext
from mograg.server.page import inspect_data
from mograg.server.schemas import RequestModels, takes
from mograg.server.service import generation_header
from mograg.types import DEFAULT_STRATEGY


def read_router(ctx: ServerContext, models: RequestModels) -> APIRouter:
    """The read endpoints over ``ctx.service`` (all but ``/health`` need read auth)."""
    service, require_read = ctx.service, ctx.require_read
    SearchRequest, InspectRequest = models.search, models.inspect
    routes = APIRouter()

    @routes.post("/search", dependencies=[Depends(require_read)], tags=["read"])
    @takes(SearchRequest)
    def search(req: Any) -> Any:
        """Retrieve up to ``budget`` tokens; the same JSON as ``mograg search --json``."""
        with service.searching() as h:
            res = h.index.search(req.query, budget=req.budget, level=req.level, mode=req.mode,
                                 router=req.router, strategy=req.strategy, where=req.where)
        return JSONResponse(res.to_dict(), headers=generation_header(h))

    def inspect(req: Any) -> Any:
        with service.searching() as h:
            data = inspect_data(h, req)
        return JSONResponse(data, headers=generation_header(h))

    @routes.get("/api/inspect", dependencies=[Depends(require_read)], tags=["read"])
    def inspect_get(
        query: str, budget: int = 256, router: str | None = None, mode: str = "hybrid",
        level: int | None = None, strategy: str = DEFAULT_STRATEGY, top: int = 5,
    ) -> Any:
        """What the page shows: router weights, each level's top hits, the final context."""
        try:
            req = InspectRequest(query=query, budget=budget, router=router or None, mode=mode,
                                 level=level, strategy=strategy, top=top)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
            ) from None
        return inspect(req)

    @routes.post("/api/inspect", dependencies=[Depends(require_read)], tags=["read"])
    @takes(InspectRequest)
    def inspect_post(req: Any) -> Any:
        """Same as ``GET /api/inspect`` with a JSON body."""
        return inspect(req)

    @routes.get("/documents/{doc_id:path}", dependencies=[Depends(require_read)], tags=["read"])
    def get_document(doc_id: str) -> Any:
        """A document's full text and metadata (offsets in hits index this text)."""
        h = service.handle()
        snap = h.index.snapshot
        d = snap.doc_index.get(doc_id)
        if d is None:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return JSONResponse(
            {"id": doc_id, "text": snap.text(d), "metadata": snap.metadata(d)},
            headers=generation_header(h),
        )

    @routes.get("/info", dependencies=[Depends(require_read)], tags=["read"])
    def info() -> Any:
        """Counts and settings of the index (``mograg info --json`` without the path)."""
        h = service.handle()
        return JSONResponse(h.info, headers=generation_header(h))

    @routes.get("/health", tags=["read"])
    def health() -> Any:
        """Liveness: always open, reveals nothing but the generation number."""
        h = service.handle()
        return {"status": "ok", "generation": h.generation}
    return routes
