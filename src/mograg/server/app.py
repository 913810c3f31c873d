"""`mograg serve`: an HTTP API over one index, plus a page that shows how a query was routed.

Endpoints (JSON in and out; errors are ``{"error": "..."}`` with the matching status):

- ``POST /search`` ``{query, budget?, router?, mode?, level?, strategy?}`` → the
  ``mograg search --json`` object (hits plus ``routing`` with the router's weights);
- ``POST /documents`` a JSON list of ``{"id", "text", "metadata"?}`` (the docs.jsonl
  schema) or a multipart upload of ``.jsonl``/``.txt``/``.md``/``.html``/``.pdf`` files;
- ``DELETE /documents/{id}``, ``GET /documents/{id}`` (text and metadata);
- ``GET /info``, ``GET /health``;
- ``POST /ask`` ``{question, budget?, router?, strategy?, mode?, stream?}`` → the
  ``mograg ask --json`` object (added by ``mograg serve`` through the extension hook);
- ``GET|POST /api/inspect`` what the page draws: router weights, each level's top hits,
  and the assembled context;
- ``GET /`` the inspection page; ``GET /docs`` the OpenAPI documentation.

The pieces: :mod:`~mograg.server.service` (the index handle, swapped after writes),
:mod:`~mograg.server.auth` (API keys), :mod:`~mograg.server.limits` (body size and caps),
:mod:`~mograg.server.read_routes` / :mod:`~mograg.server.write_routes` (the JSON API),
:mod:`~mograg.server.page` (the inspection page), :mod:`~mograg.server.extensions` (how
``POST /ask`` is added: :mod:`mograg.server.ask`).
"""

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mograg.errors import MissingExtraError, MogragError
from mograg.server.auth import auth_dependencies, resolve_api_key
from mograg.server.extensions import (
    Extension,
    ServerContext,
    register_extension,
    registered_extensions,
)
from mograg.server.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BUDGET, MAX_QUERY_CHARS
from mograg.server.service import IndexService

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_BUDGET",
    "IndexService",
    "ServerContext",
    "create_app",
    "register_extension",
    "resolve_api_key",
    "running_server",
    "serve",
]

log = logging.getLogger("mograg.server")


def _require_extra() -> None:
    from importlib.util import find_spec

    for package, modules in (("fastapi", ("fastapi",)), ("uvicorn", ("uvicorn",)),
                             ("python-multipart", ("python_multipart", "multipart"))):
        if not any(find_spec(m) for m in modules):
            raise MissingExtraError(package, "serve", "mograg serve")


def create_app(
    index_path: str | Path | IndexService,
    api_key: str | None = None,
    private: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_budget: int = DEFAULT_MAX_BUDGET,
    max_query_chars: int = MAX_QUERY_CHARS,
    extensions: Sequence[Extension] = (),
) -> Any:
    """Build the FastAPI app serving the index at ``index_path``.

    Args:
        index_path: an existing index directory (or an :class:`IndexService` to share one
            loaded index between apps).
        api_key: the key required for writes (and reads when ``private``); without a key
            the server is read-only. See :func:`resolve_api_key` for env/file lookup.
        private: require the key for reads too (the page itself and ``/health`` stay open).
        max_body_bytes: request body limit (larger bodies get 413).
        max_budget: the largest token budget a request may ask for.
        max_query_chars: the longest query accepted.
        extensions: functions ``fn(app, ctx)`` adding routes (see :class:`ServerContext`).

    Returns:
        The FastAPI application.
    """
    _require_extra()
    from fastapi import FastAPI

    from mograg.server.error_handlers import install_error_handlers
    from mograg.server.limits import BodyLimit
    from mograg.server.page import page_router
    from mograg.server.read_routes import read_router
    from mograg.server.schemas import request_models
    from mograg.server.write_routes import write_router

    if private and not api_key:
        raise MogragError("private mode needs an API key: set MOGRAG_API_KEY or --api-key-file")
    if max_body_bytes < 1 or max_budget < 1:
        raise MogragError("max_body_bytes and max_budget must be positive")
    service = index_path if isinstance(index_path, IndexService) else IndexService(index_path)
    require_read, require_write = auth_dependencies(api_key, private)
    ctx = ServerContext(service=service, require_read=require_read, require_write=require_write,
                        max_budget=max_budget, max_query_chars=max_query_chars,
                        settings={"private": private, "max_body_bytes": max_body_bytes})
    models = request_models(max_query_chars, max_budget)

    app = FastAPI(
        title="mograg",
        summary="Mix-of-Granularity retrieval over one index",
        description="Search an index whose documents are chunked at several granularities; "
        "a router picks (or mixes) the granularity per query. The page at / shows how.",
        version=_version(),
    )
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    install_error_handlers(app)
    app.include_router(read_router(ctx, models))
    app.include_router(write_router(ctx, models))
    app.include_router(page_router())
    for ext in [*registered_extensions(), *extensions]:
        ext(app, ctx)
    app.state.mograg = ctx
    return app


def _version() -> str:
    from mograg import __version__

    return __version__


# --------------------------------------------------------------------------- running it


def serve(
    index_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    api_key_file: str | Path | None = None,
    private: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_budget: int = DEFAULT_MAX_BUDGET,
    log_level: str = "info",
    config: str | Path | None = None,
    generator_flags: dict[str, Any] | None = None,
) -> None:
    """Serve the index with uvicorn until interrupted (``mograg serve``), with ``POST /ask``."""
    _require_extra()
    import uvicorn
    from threadpoolctl import threadpool_limits

    from mograg.config import load_config, resolve_generator_settings
    from mograg.server.ask import make_ask_extension

    # many concurrent small matrix-vector products: one BLAS thread each beats contention
    threadpool_limits(1, user_api="blas")
    key = resolve_api_key(api_key, api_key_file)
    settings = resolve_generator_settings(generator_flags or {}, load_config(config))
    app = create_app(index_path, api_key=key, private=private, max_body_bytes=max_body_bytes,
                     max_budget=max_budget, extensions=[make_ask_extension(settings)])
    if host not in ("127.0.0.1", "localhost", "::1") and key is None:
        log.warning("serving on %s without an API key: anyone who can reach it can read", host)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False,
                timeout_graceful_shutdown=5, limit_concurrency=1024)


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yield its base URL (for tests, benches).

    ``port=0`` picks a free port. The server is stopped when the block exits.
    """
    _require_extra()
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", server_header=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="mograg-server")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise MogragError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
