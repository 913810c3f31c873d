"""Connection limits below the ASGI app: silent or slow clients cannot starve others.

uvicorn closes a keep-alive connection that stays idle after a response, but a
connection that never sends a complete request is kept forever, and its
``limit_concurrency`` then answers 503 to *every* client once enough silent sockets
are open. :func:`guarded_protocol` makes uvicorn's h11 protocol class with three
limits, enforced per connection on the event loop (no thread, no polling):

- header timeout: the request line and headers must arrive within ``header_timeout``
  seconds of the connection opening (or of the first byte after a keep-alive pause);
- body timeout: the body must arrive within ``body_timeout`` seconds after the headers;
- a cap on open connections per client address: one more is answered 503 and closed.

A timed-out request gets a 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_MAX_CONNECTIONS_PER_CLIENT",
    "guarded_protocol",
]

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_KEEP_ALIVE = 5
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 64


def _response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


def guarded_protocol(
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
) -> type[H11Protocol]:
    """A uvicorn ``http=`` protocol class enforcing the limits (see the module docstring).

    Each call makes a new class with its own per-address connection counts (one server).
    """
    import h11  # the serve extra: imported only when a server is built
    from uvicorn.protocols.http.h11_impl import H11Protocol
    open_per_client: dict[str, int] = {}
    too_many = _response(
        503, "Service Unavailable",
        f"too many open connections from your address (limit {max_per_client}); "
        "close idle ones or retry later",
    )
    too_slow = _response(
        408, "Request Timeout",
        "the request did not arrive in time (headers within "
        f"{header_timeout:g} s, body within {body_timeout:g} s); send it at once",
    )

    class GuardedH11Protocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _timer_kind: str | None = None
        _address: str | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if address is not None:
                if open_per_client.get(address, 0) >= max_per_client:
                    # not counted towards uvicorn's global limit either: a flood from one
                    # address must not make the server answer 503 to everyone else
                    self.connections.discard(self)
                    transport.write(too_many)
                    transport.close()
                    return
                open_per_client[address] = open_per_client.get(address, 0) + 1
                self._address = address
            self._arm("header", header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._address is not None:
                left = open_per_client.get(self._address, 1) - 1
                if left > 0:
                    open_per_client[self._address] = left
                else:
                    open_per_client.pop(self._address, None)
                self._address = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_state()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow_state()

        def _follow_state(self) -> None:
            """Arm the timer the client's side of the connection calls for."""
            if self.transport is None or self.transport.is_closing():
                self._disarm()
                return
            state = self.conn.their_state
            if state is h11.IDLE:
                # waiting for a request: uvicorn's keep-alive timer covers the pause
                # before its first byte; once bytes came, the headers must follow
                if self._timer is None and self.conn.trailing_data[0]:
                    self._arm("header", header_timeout)
            elif state is h11.SEND_BODY:
                if self._timer_kind != "body":
                    self._arm("body", body_timeout)
            else:
                self._disarm()

        def _arm(self, kind: str, seconds: float) -> None:
            self._disarm()
            self._timer_kind = kind
            self._timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self._timer_kind = None

        def _expired(self) -> None:
            self._timer = None
            self._timer_kind = None
            if self.transport is None or self.transport.is_closing():
                return
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                cycle = self.cycle
                if cycle is None or cycle.response_complete or not cycle.response_started:
                    self.transport.write(too_slow)
                self.transport.close()

    GuardedH11Protocol.open_per_client = open_per_client  # type: ignore[attr-defined]
    return GuardedH11Protocol
