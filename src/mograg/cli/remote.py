"""`mograg search` / `ask` through a running `mograg serve` of the same index.

A cold CLI process spends most of its second loading numpy, the index and the model; a
server has them loaded. When the index directory names a live server
(:func:`mograg.server.endpoint.find_server`), the query goes there over loopback HTTP
(the standard library's client: nothing heavy is imported) and the reply is printed as the
in-process result would be. Any doubt means ``None`` and the caller runs the query itself:
no server, a private one without ``MOGRAG_API_KEY``, limits the server would refuse, a
refused connection, a non-200 status, a reply from another process (instance token) or
from another generation of the index than the manifest's (the server reloads within a
second of a commit), a different answer generator.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mograg.errors import MogragError
from mograg.server.endpoint import GENERATION_HEADER, INSTANCE_HEADER, Endpoint, find_server

if TYPE_CHECKING:
    import http.client

CONNECT_TIMEOUT = 2.0
SEARCH_TIMEOUT = 120.0
ASK_TIMEOUT = 600.0


def _generation(root: Path) -> int | None:
    """The committed generation named by the manifest (None if unreadable)."""
    try:
        value = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["generation"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


def _server(root: Path, text: str, budget: int) -> Endpoint | None:
    ep = find_server(root)
    if ep is None or (ep.private and not os.environ.get("MOGRAG_API_KEY")):
        return None
    if budget > ep.max_budget or len(text) > ep.max_query_chars:
        return None
    return ep


def _post(ep: Endpoint, root: Path, path: str, body: dict[str, Any],
          timeout: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse] | None:
    """Send the request; the open response if it is this server's 200 reply from the
    index's current generation, else None."""
    import http.client  # only once a server is found

    generation = _generation(root)
    if generation is None:
        return None
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=CONNECT_TIMEOUT)
    headers = {"Content-Type": "application/json"}
    key = os.environ.get("MOGRAG_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException):
        conn.close()
        return None
    if (resp.status != 200 or resp.getheader(INSTANCE_HEADER) != ep.instance
            or resp.getheader(GENERATION_HEADER) != str(generation)):
        conn.close()
        return None
    return conn, resp


def search(root: Path, body: dict[str, Any]) -> dict[str, Any] | None:
    """``POST /search`` (the ``mograg search --json`` object), or None: search in-process."""
    ep = _server(root, body["query"], body["budget"])
    if ep is None:
        return None
    sent = _post(ep, root, "/search", body, SEARCH_TIMEOUT)
    if sent is None:
        return None
    conn, resp = sent
    import http.client

    try:
        data = json.loads(resp.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return data if isinstance(data, dict) else None


def ask(root: Path, body: dict[str, Any], generator: str,
        stream: bool) -> dict[str, Any] | None:
    """``POST /ask`` if the server's generator has the fingerprint ``generator``; the
    ``mograg ask --json`` object, or None: answer in-process. With ``stream`` the answer
    is written to stdout as it arrives (an error after that is raised, not retried)."""
    ep = _server(root, body["question"], body["budget"])
    if ep is None or ep.generator != generator:
        return None
    sent = _post(ep, root, "/ask", {**body, "stream": stream}, ASK_TIMEOUT)
    if sent is None:
        return None
    conn, resp = sent
    import http.client

    wrote = False
    try:
        if not stream:
            data = json.loads(resp.read())
            return data if isinstance(data, dict) else None
        for kind, value in _events(resp):
            if kind == "delta":
                sys.stdout.write(value)
                sys.stdout.flush()
                wrote = True
            elif kind == "answer" and isinstance(value, dict):
                return value
            elif wrote:  # an error once the answer has started: report it as in-process
                raise MogragError(str(value))
            else:
                return None
        if wrote:
            raise MogragError("the server closed the connection before the answer ended")
        return None
    except (OSError, ValueError, http.client.HTTPException):
        if wrote:
            raise MogragError("the connection to the server broke during the answer; "
                              "run again (--no-server answers in this process)") from None
        return None
    finally:
        conn.close()


def _events(resp: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """``(kind, value)`` of each server-sent ``data: {kind: value}`` event."""
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line.startswith("data: "):
            continue
        event = json.loads(line[len("data: "):])
        if isinstance(event, dict) and len(event) == 1:
            yield next(iter(event.items()))
