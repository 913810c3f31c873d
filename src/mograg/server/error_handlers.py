"""Errors as JSON: ``{"error": "..."}`` with the matching status, for every failure.

An unexpected exception (a bug) is a 500 and one log line; the traceback is logged
only with ``MOGRAG_DEBUG=1`` (``mograg --debug serve``).
"""

import logging
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mograg.errors import MogragError
from mograg.server.limits import send_error

log = logging.getLogger("mograg.server")
INTERNAL = "internal server error; see the server log"


def log_unexpected(method: str, path: str, exc: BaseException) -> None:
    """One log line for a bug, or its traceback with ``MOGRAG_DEBUG=1``."""
    if os.environ.get("MOGRAG_DEBUG", "").strip() not in ("", "0"):
        log.error("internal error on %s %s", method, path, exc_info=exc)
        return
    msg = " ".join(str(exc).split())[:300]
    log.error("internal error on %s %s: %s: %s (this is a bug in mograg, please report it; "
              "MOGRAG_DEBUG=1 logs the traceback)", method, path, type(exc).__name__, msg)


class CatchUnexpected:
    """ASGI middleware: an exception no handler took becomes a 500 ``{"error"}`` and one
    log line, and is not re-raised (servers would log its traceback)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_unexpected(scope.get("method", "?"), scope.get("path", "?"), exc)
            if not started:
                await send_error(send, 500, INTERNAL)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error (HTTP, validation, MogragError, unexpected) one JSON object."""

    def error(status: int, message: str, **extra: Any) -> Any:
        headers = extra.pop("headers", None)
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        return error(exc.status_code, str(detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Any:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return error(422, f"invalid {where}: {first['msg']}", details=details)

    @app.exception_handler(MogragError)
    async def _mograg_error(request: Request, exc: MogragError) -> Any:
        return error(400, " ".join(str(exc).split()))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Any:
        log_unexpected(request.method, request.url.path, exc)
        return error(500, INTERNAL)
