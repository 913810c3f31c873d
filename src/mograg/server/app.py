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
from typing import TYPE_CHECKING, Any

from mograg.errors import MissingExtraError, MogragError
from mograg.server.auth import auth_dependencies, resolve_api_key
from mograg.server.conn_guard import DEFAULT_MAX_CONNECTIONS_PER_CLIENT
from mograg.server.extensions import (
    Extension,
    ServerContext,
    register_extension,
    registered_extensions,
)
from mograg.server.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BUDGET, MAX_QUERY_CHARS
from mograg.server.service import IndexService

if TYPE_CHECKING:
    from mograg.server.endpoint import Endpoint

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

    from mograg.server.error_handlers import CatchUnexpected, install_error_handlers
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

    hidden: dict[str, Any] = {"openapi_url": None, "docs_url": None, "redoc_url": None}
    app = FastAPI(
        title="mograg",
        summary="Mix-of-Granularity retrieval over one index",
        description="Search an index whose documents are chunked at several granularities; "
        "a router picks (or mixes) the granularity per query. The page at / shows how.",
        version=_version(),
        **(hidden if private else {}),
    )
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(CatchUnexpected)
    install_error_handlers(app)
    if private:
        _private_api_description(app, require_read)
    app.include_router(read_router(ctx, models))
    app.include_router(write_router(ctx, models))
    app.include_router(page_router())
    for ext in [*registered_extensions(), *extensions]:
        ext(app, ctx)
    app.state.mograg = ctx
    return app


def _private_api_description(app: Any, require_read: Any) -> None:
    """``/openapi.json`` and ``/docs`` behind the API key (they list every endpoint)."""
    from fastapi import Depends
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import JSONResponse

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_read)])
    def openapi() -> Any:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_read)])
    def docs() -> Any:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mograg API")


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
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
) -> None:
    """Serve the index with uvicorn until interrupted (``mograg serve``), with ``POST /ask``.

    Connections are guarded (see :mod:`mograg.server.conn_guard`): request headers must
    arrive within 10 s, bodies within 60 s, idle keep-alive connections close after 5 s,
    and one client address holds at most ``max_connections_per_client`` connections.
    While it runs, ``serve.json`` in the index directory tells ``mograg search`` / ``ask``
    where to send their queries (:mod:`mograg.server.endpoint`). ``port=0`` picks a free port.
    """
    _require_extra()
    from threadpoolctl import threadpool_limits

    from mograg.config import load_config, resolve_generator_settings
    from mograg.server.ask import make_ask_extension
    from mograg.server.endpoint import InstanceHeader, generator_fingerprint, new_endpoint

    # many concurrent small matrix-vector products: one BLAS thread each beats contention
    threadpool_limits(1, user_api="blas")
    key = resolve_api_key(api_key, api_key_file)
    settings = resolve_generator_settings(generator_flags or {}, load_config(config))
    app = create_app(index_path, api_key=key, private=private, max_body_bytes=max_body_bytes,
                     max_budget=max_budget, extensions=[make_ask_extension(settings)])
    if host not in ("127.0.0.1", "localhost", "::1") and key is None:
        log.warning("serving on %s without an API key: anyone who can reach it can read", host)
    root = Path(index_path)
    sock = _bound_socket(host, port)
    ep = new_endpoint(root, host, sock.getsockname()[1], private=private,
                      max_budget=max_budget, max_query_chars=MAX_QUERY_CHARS,
                      generator=generator_fingerprint(settings.to_dict()))
    app.add_middleware(InstanceHeader, instance=ep.instance)
    config_ = uvicorn_config(app, max_connections_per_client, host=host, port=ep.port,
                             log_level=log_level, timeout_graceful_shutdown=5,
                             limit_concurrency=1024)
    _run_advertised(config_, sock, root, ep, host)


def _run_advertised(config: Any, sock: socket.socket, root: Path, ep: "Endpoint",
                    host: str) -> None:
    """Run uvicorn on ``sock`` with ``serve.json`` naming it while it serves."""
    import uvicorn

    from mograg.server.endpoint import remove_endpoint, write_endpoint

    written = [False]

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit:
                return
            # advertise only once started: uvicorn's signal handlers are in place, so a
            # SIGTERM from now on runs shutdown, which removes serve.json again (written
            # before them, a SIGTERM in between ended the process and left the file)
            written[0] = write_endpoint(root, ep)
            # uvicorn does not announce a socket it is handed; its own line, in its format
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)",
                f"[{host}]" if ":" in host else host, ep.port)
            if not written[0]:
                log.warning("cannot write %s: `mograg search` will not use this server", root)

        async def shutdown(self, sockets: Any = None) -> None:
            # stop advertising first: after a SIGTERM, uvicorn re-raises the signal once
            # shut down, and the process ends without running `finally` blocks
            if written[0]:
                remove_endpoint(root, ep)
            await super().shutdown(sockets=sockets)

    try:
        Server(config).run(sockets=[sock])
    finally:
        if written[0]:
            remove_endpoint(root, ep)
        sock.close()


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MogragError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def uvicorn_config(
    app: Any, max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    **kwargs: Any,
) -> Any:
    """The uvicorn configuration of every mograg server: the guarded h11 protocol."""
    import uvicorn

    from mograg.server.conn_guard import (
        DEFAULT_BODY_TIMEOUT,
        DEFAULT_HEADER_TIMEOUT,
        DEFAULT_KEEP_ALIVE,
        guarded_protocol,
    )

    if max_connections_per_client < 1:
        raise MogragError("max_connections_per_client must be at least 1")
    protocol = guarded_protocol(DEFAULT_HEADER_TIMEOUT, DEFAULT_BODY_TIMEOUT,
                                max_connections_per_client)
    return uvicorn.Config(app, http=protocol, timeout_keep_alive=DEFAULT_KEEP_ALIVE,
                          server_header=False, **kwargs)


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yield its base URL (for tests, benches).

    ``port=0`` picks a free port. The server is stopped when the block exits.
    """
    _require_extra()
    import uvicorn

    sock = _bound_socket(host, port)
    port = sock.getsockname()[1]
    config = uvicorn_config(app, log_level="warning", timeout_graceful_shutdown=2)
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
