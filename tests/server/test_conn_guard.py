"""Connection limits with real sockets on loopback: silent, slow and too many connections
are closed, while other clients are served."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("uvicorn")
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mograg.server.conn_guard import guarded_protocol

LIMIT = 3


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    protocol = guarded_protocol(header_timeout=0.5, body_timeout=0.5, max_per_client=LIMIT)
    # a global limit just above the per-address cap: refused connections must not count
    config = uvicorn.Config(app, http=protocol, log_level="error", timeout_keep_alive=1,
                            limit_concurrency=LIMIT + 3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _connect(url: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = url.split(":")
    s = socket.create_connection((host, int(port)), timeout=20, source_address=(source, 0))
    return s


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data


def test_silent_connection_is_closed_with_408(url: str) -> None:
    with _connect(url) as s:
        reply = _read_all(s)  # returns only once the server closed the socket
    assert reply.startswith(b"HTTP/1.1 408")


def test_slow_headers_are_cut_off(url: str) -> None:
    with _connect(url) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(100):  # a header byte every 0.1 s: never complete
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        reply = b"" if closed else _read_all(s)
    assert closed or reply.startswith(b"HTTP/1.1 408")


def test_slow_body_is_cut_off(url: str) -> None:
    with _connect(url) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        reply = _read_all(s)
    assert reply.startswith(b"HTTP/1.1 408")


def test_connection_cap_per_address_spares_other_addresses(url: str) -> None:
    held = [_connect(url, "127.0.0.2") for _ in range(LIMIT)]
    refused = [_connect(url, "127.0.0.2") for _ in range(LIMIT + 5)]
    try:
        time.sleep(0.1)
        for extra in refused:
            reply = _read_all(extra)
            assert reply.startswith(b"HTTP/1.1 503") and b"too many open connections" in reply
        # another address is served meanwhile, over one keep-alive connection
        with httpx.Client(base_url=f"http://{url}") as client:
            for n in (0, 10, 1000):
                r = client.post("/echo", content=b"x" * n)
                assert r.status_code == 200 and r.json() == {"bytes": n}
    finally:
        for s in held + refused:
            s.close()


def test_keep_alive_requests_are_not_cut(url: str) -> None:
    with httpx.Client(base_url=f"http://{url}") as client:
        for _ in range(3):
            assert client.post("/echo", content=b"abc").status_code == 200
            time.sleep(0.3)  # pauses below the keep-alive timeout, beyond none
