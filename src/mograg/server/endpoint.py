"""How a CLI on the same machine finds a running ``mograg serve`` of an index.

Once it listens, ``mograg serve`` writes ``serve.json`` into the index directory (where it
listens, its process id, the index path, a random instance token, its limits and a
fingerprint of its answer generator's settings) and removes it when it stops. Every
response of that server carries the token in an ``X-Mograg-Instance`` header, so a client
knows it reached that process and not whatever took over the port. A file left by a killed
server is recognised by its dead process. Only the standard library is used here: the CLI
reads this before deciding whether it needs numpy and the model at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENDPOINT = "serve.json"
INSTANCE_HEADER = "X-Mograg-Instance"
# the committed generation a reply was computed from (the CLI checks it against the manifest)
GENERATION_HEADER = "X-Mograg-Generation"


@dataclass(frozen=True)
class Endpoint:
    """What ``serve.json`` holds."""

    host: str  # where to connect (a wildcard bind address becomes loopback)
    port: int
    pid: int
    index: str  # the resolved index directory served
    instance: str  # random token, echoed in the X-Mograg-Instance header
    private: bool  # reads need the API key
    max_budget: int
    max_query_chars: int
    generator: str  # generator_fingerprint() of the settings POST /ask uses

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def generator_fingerprint(settings: Mapping[str, Any]) -> str:
    """A digest of generator settings (``GeneratorSettings.to_dict()``) that change answers:
    a CLI uses a server's ``POST /ask`` only when its own settings give the same digest."""
    relevant = {k: v for k, v in settings.items() if k not in ("timeout", "retries")}
    raw = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def new_endpoint(root: Path, host: str, port: int, *, private: bool, max_budget: int,
                 max_query_chars: int, generator: str) -> Endpoint:
    """The record of a server of ``root`` about to listen on ``host:port`` (a fresh token)."""
    return Endpoint(host=_connect_host(host), port=port, pid=os.getpid(),
                    index=str(root.resolve()), instance=secrets.token_hex(12), private=private,
                    max_budget=max_budget, max_query_chars=max_query_chars, generator=generator)


def write_endpoint(root: Path, ep: Endpoint) -> bool:
    """Write ``serve.json`` atomically; False if the directory is not writable."""
    tmp = root / f".{ENDPOINT}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(asdict(ep)), encoding="utf-8")
        os.replace(tmp, root / ENDPOINT)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def remove_endpoint(root: Path, ep: Endpoint) -> None:
    """Remove ``serve.json`` if it is still this server's (another may have replaced it)."""
    current = read_endpoint(root)
    if current is not None and current.instance == ep.instance:
        with contextlib.suppress(OSError):
            (root / ENDPOINT).unlink()


def read_endpoint(root: Path) -> Endpoint | None:
    """The endpoint recorded in ``root``, or None (absent, unreadable or malformed)."""
    try:
        data = json.loads((root / ENDPOINT).read_text(encoding="utf-8"))
        return Endpoint(**{f: data[f] for f in Endpoint.__dataclass_fields__})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, OverflowError):
        return False
    return True


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def find_server(root: Path) -> Endpoint | None:
    """A live server of the index at ``root`` according to its ``serve.json``, or None.

    The file must name this very directory (a copied index carries a stale file), a
    loopback address (the client may send ``MOGRAG_API_KEY``: never off this machine) and a
    running process; the client still checks the instance header of each response.
    """
    ep = read_endpoint(root)
    if ep is None or not isinstance(ep.port, int) or not isinstance(ep.pid, int):
        return None
    if not isinstance(ep.host, str) or not _loopback(ep.host):
        return None
    try:
        if ep.index != str(root.resolve()):
            return None
    except OSError:
        return None
    return ep if _alive(ep.pid) else None


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class InstanceHeader:
    """ASGI middleware adding ``X-Mograg-Instance: <token>`` to every HTTP response."""

    def __init__(self, app: ASGIApp, instance: str) -> None:
        self.app = app
        self.header = (INSTANCE_HEADER.lower().encode(), instance.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)
