"""Request limits: body size (checked up front and while streaming), budgets, lengths.

Budgets and other knobs are capped so one request cannot ask for unbounded work.
"""

import json
from typing import Any

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_BUDGET = 8192
MAX_QUERY_CHARS = 2000
MAX_TOP = 20
MAX_FILES = 64
MAX_FIELDS = 64
MAX_ID_CHARS = 512


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, before reading them.

    A declared ``Content-Length`` over the limit is refused at once; otherwise the bytes
    are counted as they stream in and the request fails as soon as it passes the limit.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body too large: the limit is {self.limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await send_error(send, 413, message)
                    return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    from fastapi import HTTPException

                    raise HTTPException(status_code=413, detail=message)
            return msg

        await self.app(scope, limited_receive, send)


async def send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})
