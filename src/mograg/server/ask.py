"""``POST /ask``: answers with citations over HTTP (the ``mograg ask --json`` object).

Added to the app as an extension (see :mod:`mograg.server.extensions`) by ``mograg serve``.
"""

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mograg.answer.generate import answer, make_generator
from mograg.config import GeneratorSettings
from mograg.errors import MogragError
from mograg.server.endpoint import GENERATION_HEADER
from mograg.types import DEFAULT_STRATEGY, Mode, Strategy


def make_ask_extension(settings: GeneratorSettings | None = None,
                       generator: Any = None) -> Callable[[Any, Any], None]:
    """A ``mograg serve`` extension adding ``POST /ask`` (the ``mograg ask --json`` object).

    The generator is built from ``settings`` on first use (or ``generator`` is used as is).
    Body: ``{"question", "budget"?, "router"?, "strategy"?, "mode"?, "stream"?}``; with
    ``"stream": true`` the reply is ``text/event-stream``: ``data: {"delta": "..."}`` events,
    then ``data: {"answer": {...the JSON object...}}`` (or ``data: {"error": "..."}``).
    """
    lock = threading.Lock()
    holder: dict[str, Any] = {"generator": generator}

    def get_generator() -> Any:
        with lock:
            if holder["generator"] is None:
                holder["generator"] = make_generator(settings)
            return holder["generator"]

    def extension(app: Any, ctx: Any) -> None:
        from fastapi import Depends
        from fastapi.responses import JSONResponse, StreamingResponse
        from pydantic import BaseModel, ConfigDict, Field

        class AskRequest(BaseModel):
            model_config = ConfigDict(extra="forbid")
            question: str = Field(min_length=1, max_length=ctx.max_query_chars,
                                  description="The question.")
            budget: int = Field(256, ge=1, le=ctx.max_budget,
                                description="Token budget of the retrieved context.")
            router: str | None = Field(None, max_length=200,
                                       description="Router name, 'entropy' or 'level:N'.")
            strategy: Strategy = DEFAULT_STRATEGY
            mode: Mode = "hybrid"
            stream: bool = Field(False, description="Stream the answer as server-sent events.")

        def ask(req: AskRequest) -> Any:
            """Answer a question from the index, with citations (``mograg ask --json``)."""
            h = ctx.service.handle()
            gen = get_generator()
            if not req.stream:
                result = answer(h.index, req.question, gen, budget=req.budget,
                                router=req.router, strategy=req.strategy, mode=req.mode)
                return JSONResponse(result,
                                    headers={GENERATION_HEADER: str(h.generation)})
            events: queue.Queue[tuple[str, Any]] = queue.Queue()

            def work() -> None:
                try:
                    result = answer(h.index, req.question, gen, budget=req.budget,
                                    router=req.router, strategy=req.strategy, mode=req.mode,
                                    stream_to=lambda piece: events.put(("delta", piece)))
                    events.put(("answer", result))
                except MogragError as exc:
                    events.put(("error", " ".join(str(exc).split())))
                except Exception:  # the stream has started: report, do not raise
                    events.put(("error", "internal server error; see the server log"))

            def sse() -> Iterator[str]:
                threading.Thread(target=work, daemon=True, name="mograg-ask").start()
                while True:
                    kind, value = events.get()
                    yield f"data: {json.dumps({kind: value}, ensure_ascii=False)}\n\n"
                    if kind != "delta":
                        break

            return StreamingResponse(sse(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache",
                                              GENERATION_HEADER: str(h.generation)})

        ask.__annotations__["req"] = AskRequest  # a local class: resolve it for FastAPI
        app.add_api_route("/ask", ask, methods=["POST"], tags=["read"],
                          dependencies=[Depends(ctx.require_read)])

    return extension
