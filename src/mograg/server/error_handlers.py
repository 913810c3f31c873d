"""Errors as JSON: ``{"error": "..."}`` with the matching status, for every failure."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mograg.errors import MogragError

log = logging.getLogger("mograg.server")


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
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error(500, "internal server error; see the server log")
