"""The routing-inspector page: its static files, and the data it draws for one query."""

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from mograg.server.service import Handle
from mograg.types import Granularity

PREVIEW_CHARS = 280
WEB_DIR = Path(__file__).parent.parent / "web"
# the page's files: a fixed table, so no request path is ever mapped to a file path
WEB_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page_router() -> APIRouter:
    """``GET /`` and its two static files (a fixed table: no request path maps to a file)."""
    router = APIRouter()

    def page_route(url: str, filename: str, media_type: str) -> None:
        path = WEB_DIR / filename

        async def page() -> Any:
            return Response(path.read_bytes(), media_type=media_type, headers=PAGE_HEADERS)

        router.add_api_route(url, page, methods=["GET"], include_in_schema=False,
                             name=f"page:{filename}")

    for url, (filename, media_type) in WEB_FILES.items():
        page_route(url, filename, media_type)
    return router


def inspect_data(h: Handle, req: Any) -> dict[str, Any]:
    """The page's data for one query (see ``GET /api/inspect``)."""
    ix = h.index
    snap = ix.snapshot
    t0 = time.perf_counter()
    q = ix.encode_queries([req.query])[0]
    t1 = time.perf_counter()
    res = ix.search(q, budget=req.budget, level=req.level, mode=req.mode, router=req.router,
                    strategy=req.strategy)
    t2 = time.perf_counter()
    rankings = ix.rank(q, req.mode)
    routing = res.routing or {}
    weights = routing.get("weights") or {}
    chosen = set(routing.get("chosen") or [])
    levels = []
    for j, (size, ranking) in enumerate(zip(ix.levels, rankings, strict=True)):
        name = str(Granularity.level(size))
        hits = []
        for c, s in zip(ranking.ids[: req.top].tolist(), ranking.scores[: req.top].tolist(),
                        strict=True):
            doc, start, end = snap.chunk_span(j, c)
            text = snap.text(doc)[start:end]
            hits.append({
                "doc_id": snap.doc_ids[doc], "start": start, "end": end,
                "score": round(float(s), 6), "n_tokens": int(snap.levels[j][c]["n_tokens"]),
                "preview": text if len(text) <= PREVIEW_CHARS
                else text[: PREVIEW_CHARS - 1].rstrip() + "…",
            })
        levels.append({"name": name, "size": size, "weight": weights.get(name),
                       "chosen": name in chosen, "hits": hits})
    return {
        "query": req.query,
        "settings": {"budget": req.budget, "mode": req.mode, "router": req.router,
                     "strategy": req.strategy, "level": req.level, "top": req.top},
        "routing": routing,
        "weights": [{"name": n, "weight": w, "chosen": n in chosen} for n, w in weights.items()],
        "levels": levels,
        "result": res.to_dict(),
        "generation": h.generation,
        "timings_ms": {"encode": round(1000 * (t1 - t0), 2), "search": round(1000 * (t2 - t1), 2),
                       "levels": round(1000 * (time.perf_counter() - t2), 2)},
    }
