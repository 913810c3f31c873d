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

Security: an API key (``MOGRAG_API_KEY`` or ``--api-key-file``) is required for every
write, and for reads too with ``private=True``; keys are compared in constant time. The
request body is limited (``Content-Length`` is checked up front and streamed bytes are
counted), budgets and other knobs are capped, the default bind is 127.0.0.1 and no
path parameter ever touches the filesystem (document ids are dictionary keys; uploads
are written under fresh temporary directories with sanitised base names).

Concurrency: requests read from the current :class:`~mograg.index.core.Index` handle, whose
snapshot is immutable. Writes run in a worker thread, one at a time (a lock here, the
index's file lock across processes); after a write commits, a fresh handle is opened,
warmed up and swapped in with a single assignment. Requests already running keep the
handle they started with, so every request sees exactly one committed generation. A
generation committed by another process (``mograg index``) is picked up within a second.

Extensions (the answer endpoint): pass ``extensions=[fn]`` to :func:`create_app` or call
:func:`register_extension` before the app is built; each ``fn(app, ctx)`` receives the
FastAPI app and a :class:`ServerContext` with the index service and auth dependencies.
"""

import contextlib
import hmac
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mograg.errors import MissingExtraError, MogragError
from mograg.index.core import Index, WriteReport
from mograg.store.storage import read_manifest
from mograg.types import Document

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

log = logging.getLogger("mograg.server.app")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_BUDGET = 8192
MAX_QUERY_CHARS = 2000
MAX_TOP = 20
MAX_FILES = 64
MAX_FIELDS = 64
MAX_ID_CHARS = 512
PREVIEW_CHARS = 280
RELOAD_INTERVAL = 1.0
WEB_DIR = Path(__file__).parent.parent / "web"
# the page's files: a fixed table, so no request path is ever mapped to a file path
WEB_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
UPLOAD_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


def _require_extra() -> None:
    from importlib.util import find_spec

    for package, modules in (("fastapi", ("fastapi",)), ("uvicorn", ("uvicorn",)),
                             ("python-multipart", ("python_multipart", "multipart"))):
        if not any(find_spec(m) for m in modules):
            raise MissingExtraError(package, "serve", "mograg serve")


# --------------------------------------------------------------------------- index service


@dataclass
class _Handle:
    """One committed generation: a read-only index handle and its cached info."""

    index: Index
    generation: int
    info: dict[str, Any]


class IndexService:
    """The index as the server sees it: a current read handle, swapped after each write.

    Reads call :meth:`handle` and use that object for the whole request; nothing ever
    mutates a handle once it is published. Writes are serialised by ``_write_lock``
    (and by the index's own file lock against other processes).
    """

    def __init__(
        self, path: str | Path, reload_interval: float = RELOAD_INTERVAL,
        search_slots: int | None = None,
    ) -> None:
        self.root = Path(path)
        self.reload_interval = reload_interval
        self._write_lock = threading.Lock()
        # searches are CPU-bound (embedding, matrix products, BM25): running more at once
        # than there are cores only adds contention, so extra ones queue here
        self.search_slots = threading.BoundedSemaphore(search_slots or os.cpu_count() or 2)
        first = Index.open(self.root)
        self._embedder = first.embedder  # loaded once, shared by every handle
        self._current = self._publishable(first)
        self._checked = time.monotonic()

    # ------------------------------------------------------------------ reads
    @contextlib.contextmanager
    def searching(self) -> Iterator[_Handle]:
        """The current generation, while holding one of the CPU slots for a search."""
        with self.search_slots:
            yield self.handle()

    def handle(self) -> _Handle:
        """The current generation (picks up commits by other processes, at most once a second)."""
        now = time.monotonic()
        if now - self._checked >= self.reload_interval:
            self._checked = now
            self._reload_if_changed()
        return self._current

    def _reload_if_changed(self) -> None:
        try:
            generation = read_manifest(self.root).get("generation")
        except MogragError as exc:
            log.warning("cannot read the manifest (%s); serving generation %s",
                        exc, self._current.generation)
            return
        if generation == self._current.generation:
            return
        if not self._write_lock.acquire(blocking=False):
            return  # a write is in progress here; it swaps in a fresh handle itself
        try:
            self._current = self._open()
        except MogragError as exc:  # a writer elsewhere raced us; try again next time
            log.warning("cannot open generation %s yet (%s)", generation, exc)
        finally:
            self._write_lock.release()

    def _open(self) -> _Handle:
        ix = Index(self.root, read_manifest(self.root), embedder=self._embedder)
        return self._publishable(ix)

    def _publishable(self, ix: Index) -> _Handle:
        """Load everything a read may touch now, while the generation's files surely exist.

        The writer garbage-collects superseded files; memory maps opened here keep
        them readable for requests still holding this handle after it is replaced.
        """
        snap = ix.snapshot
        for seg in snap.segments:
            if seg.doc_ids:
                seg.text(0)
        from mograg.graph.build import graph_radii, load_graph

        if graph_radii(ix):
            load_graph(ix).matcher(snap)
        with contextlib.suppress(MogragError, ValueError, IndexError):
            ix.search("warm up", budget=16)
        info = _info(ix)
        return _Handle(index=ix, generation=int(ix.manifest.get("generation", 0)), info=info)

    # ------------------------------------------------------------------ writes
    def add(self, documents: Sequence[Document]) -> tuple[WriteReport, int]:
        """Add (or replace) documents; return the report and the new generation."""
        with self._write_lock:
            writer = Index(self.root, read_manifest(self.root), embedder=self._embedder)
            report = writer.add(documents)
            self._current = self._open()
            return report, self._current.generation

    def delete(self, ids: Sequence[str]) -> tuple[WriteReport, int]:
        """Delete documents; return the report and the (possibly unchanged) generation."""
        with self._write_lock:
            writer = Index(self.root, read_manifest(self.root), embedder=self._embedder)
            report = writer.delete(ids)
            if report.deleted:
                self._current = self._open()
            return report, self._current.generation


def _info(ix: Index) -> dict[str, Any]:
    """``Index.info()`` without the server's filesystem path (retried: files may vanish)."""
    for _ in range(3):
        try:
            data = ix.info()
            break
        except OSError:  # a file was removed by a writer while sizes were summed
            time.sleep(0.01)
    else:
        data = {"levels": ix.levels, "generation": ix.manifest.get("generation")}
    data.pop("path", None)
    data["name"] = ix.root.name
    return data


# --------------------------------------------------------------------------- auth and limits


def resolve_api_key(
    api_key: str | None = None, api_key_file: str | Path | None = None
) -> str | None:
    """The API key: given directly, else read from ``api_key_file``, else ``MOGRAG_API_KEY``."""
    if api_key is None and api_key_file is not None:
        try:
            api_key = Path(api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MogragError(f"cannot read the API key file {api_key_file} ({exc})") from None
        if not api_key:
            raise MogragError(f"the API key file {api_key_file} is empty; put the key in it")
    if api_key is None:
        api_key = os.environ.get("MOGRAG_API_KEY", "").strip() or None
    if api_key is not None and len(api_key) < 8:
        raise MogragError("the API key is too short; use at least 8 characters (16+ random)")
    return api_key


def _given_key(headers: Any) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class _BodyLimit:
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
                    await _send_error(send, 413, message)
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


async def _send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- extensions


@dataclass
class ServerContext:
    """What an extension (e.g. ``POST /ask``) needs to add routes to the app.

    Attributes:
        service: the index service; ``service.handle().index`` is the index to read.
        require_read: FastAPI dependency enforcing read auth (``Depends(ctx.require_read)``).
        require_write: FastAPI dependency enforcing write auth.
        max_budget: the cap on token budgets.
        max_query_chars: the cap on query length.
    """

    service: IndexService
    require_read: Callable[..., None]
    require_write: Callable[..., None]
    max_budget: int
    max_query_chars: int
    settings: dict[str, Any] = field(default_factory=dict)


Extension = Callable[[Any, ServerContext], None]
_EXTENSIONS: list[Extension] = []


def register_extension(fn: Extension) -> Extension:
    """Register ``fn(app, ctx)`` to add routes to every app built afterwards (a decorator)."""
    if fn not in _EXTENSIONS:
        _EXTENSIONS.append(fn)
    return fn


# --------------------------------------------------------------------------- upload loading


def _safe_name(filename: str | None) -> str:
    """The base name of an uploaded file, or an error: never a path."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name.strip()
    if not name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise MogragError(f"invalid upload file name {filename!r}; give a plain file name")
    if len(name) > 255:
        raise MogragError("upload file name is too long (over 255 characters)")
    low = name.lower()
    if not low.endswith(UPLOAD_SUFFIXES):
        raise MogragError(
            f"unsupported upload {name!r}; supported: {', '.join(UPLOAD_SUFFIXES)}"
        )
    return name


def _load_uploads(files: Sequence[tuple[str, Any]]) -> list[Document]:
    """Documents from uploaded files (``(name, binary file object)``), ids = file names."""
    from mograg.text.documents import load_documents

    docs: list[Document] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mograg-upload-") as tmp:
        for k, (name, fobj) in enumerate(files):
            folder = Path(tmp) / str(k)
            folder.mkdir()
            path = folder / name
            with open(path, "wb") as out:
                shutil.copyfileobj(fobj, out, 1 << 20)
            loaded, probs = load_documents([path])
            shown = path.as_posix()

            def local(s: str, shown: str = shown, name: str = name) -> str:
                return s.replace(shown, name)

            problems += [local(str(p)) for p in probs]
            for d in loaded:
                meta = dict(d.metadata)
                if isinstance(meta.get("source"), str):
                    meta["source"] = local(meta["source"])
                docs.append(Document(id=local(d.id), text=d.text, metadata=meta))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MogragError(f"nothing was added: {problems[0]}{more}")
    return docs


def _check_docs(docs: Sequence[Document]) -> None:
    if not docs:
        raise MogragError("no documents given; send a non-empty list or at least one file")
    seen: set[str] = set()
    for d in docs:
        if len(d.id) > MAX_ID_CHARS:
            raise MogragError(f"document id longer than {MAX_ID_CHARS} characters: {d.id[:40]!r}…")
        if d.id in seen:
            raise MogragError(f"duplicate document id {d.id!r} in one request; ids must be unique")
        seen.add(d.id)


# --------------------------------------------------------------------------- the app


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
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    if private and not api_key:
        raise MogragError("private mode needs an API key: set MOGRAG_API_KEY or --api-key-file")
    if max_body_bytes < 1 or max_budget < 1:
        raise MogragError("max_body_bytes and max_budget must be positive")
    service = index_path if isinstance(index_path, IndexService) else IndexService(index_path)
    key_bytes = api_key.encode("utf-8") if api_key else None

    # ------------------------------------------------------------------ schemas
    Mode = Literal["hybrid", "dense", "bm25"]
    Strategy = Literal["argmax", "mix", "blend"]

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: str = Field(min_length=1, max_length=max_query_chars, description="The question.")
        budget: int = Field(256, ge=1, le=max_budget, description="Token budget of the context.")
        router: str | None = Field(
            None, max_length=200,
            description="Trained router name, 'entropy' or 'level:N' (default: the index's).",
        )
        mode: Mode = "hybrid"
        level: int | None = Field(None, ge=1, description="Search one level (size in tokens).")
        strategy: Strategy = "blend"

    class InspectRequest(SearchRequest):
        top: int = Field(5, ge=1, le=MAX_TOP, description="Hits shown per level.")

    class DocumentIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
        text: str = Field(min_length=1)
        metadata: dict[str, Any] = Field(default_factory=dict)

    docs_adapter = TypeAdapter(list[DocumentIn])

    # ------------------------------------------------------------------ auth
    def _check_key(request: Request) -> None:
        if key_bytes is None:
            raise HTTPException(403, "this server is read-only: start it with an API key "
                                     "(MOGRAG_API_KEY or --api-key-file) to allow writes")
        given = _given_key(request.headers)
        if given is None:
            raise HTTPException(
                401, "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.encode("utf-8"), key_bytes):
            raise HTTPException(403, "wrong API key")

    def require_write(request: Request) -> None:
        _check_key(request)

    def require_read(request: Request) -> None:
        if private:
            _check_key(request)

    # ------------------------------------------------------------------ app and errors
    app = FastAPI(
        title="mograg",
        summary="Mix-of-Granularity retrieval over one index",
        description="Search an index whose documents are chunked at several granularities; "
        "a router picks (or mixes) the granularity per query. The page at / shows how.",
        version=_version(),
    )
    app.add_middleware(_BodyLimit, limit=max_body_bytes)

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

    def generation_header(h: _Handle) -> dict[str, str]:
        return {"X-Mograg-Generation": str(h.generation)}

    # ------------------------------------------------------------------ reads
    @app.post("/search", dependencies=[Depends(require_read)], tags=["read"])
    def search(req: SearchRequest) -> Any:
        """Retrieve up to ``budget`` tokens; the same JSON as ``mograg search --json``."""
        with service.searching() as h:
            res = h.index.search(req.query, budget=req.budget, level=req.level, mode=req.mode,
                                 router=req.router, strategy=req.strategy)
        return JSONResponse(res.to_dict(), headers=generation_header(h))

    def inspect(req: InspectRequest) -> Any:
        with service.searching() as h:
            data = _inspect(h, req)
        return JSONResponse(data, headers=generation_header(h))

    @app.get("/api/inspect", dependencies=[Depends(require_read)], tags=["read"])
    def inspect_get(
        query: str, budget: int = 256, router: str | None = None, mode: str = "hybrid",
        level: int | None = None, strategy: str = "blend", top: int = 5,
    ) -> Any:
        """What the page shows: router weights, each level's top hits, the final context."""
        try:
            req = InspectRequest(query=query, budget=budget, router=router or None, mode=mode,
                                 level=level, strategy=strategy, top=top)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
            ) from None
        return inspect(req)

    @app.post("/api/inspect", dependencies=[Depends(require_read)], tags=["read"])
    def inspect_post(req: InspectRequest) -> Any:
        """Same as ``GET /api/inspect`` with a JSON body."""
        return inspect(req)

    @app.get("/documents/{doc_id:path}", dependencies=[Depends(require_read)], tags=["read"])
    def get_document(doc_id: str) -> Any:
        """A document's full text and metadata (offsets in hits index this text)."""
        h = service.handle()
        snap = h.index.snapshot
        d = snap.doc_index.get(doc_id)
        if d is None:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return JSONResponse(
            {"id": doc_id, "text": snap.text(d), "metadata": snap.metadata(d)},
            headers=generation_header(h),
        )

    @app.get("/info", dependencies=[Depends(require_read)], tags=["read"])
    def info() -> Any:
        """Counts and settings of the index (``mograg info --json`` without the path)."""
        h = service.handle()
        return JSONResponse(h.info, headers=generation_header(h))

    @app.get("/health", tags=["read"])
    def health() -> Any:
        """Liveness: always open, reveals nothing but the generation number."""
        h = service.handle()
        return {"status": "ok", "generation": h.generation}

    # ------------------------------------------------------------------ writes
    add_doc_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {
                    "type": "array",
                    "items": {"type": "object", "required": ["id", "text"], "properties": {
                        "id": {"type": "string"}, "text": {"type": "string"},
                        "metadata": {"type": "object"}}},
                }},
                "multipart/form-data": {"schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array",
                                             "items": {"type": "string", "format": "binary"}}},
                }},
            },
        }
    }

    @app.post("/documents", dependencies=[Depends(require_write)], tags=["write"],
              openapi_extra=add_doc_body)
    async def add_documents(request: Request) -> Any:
        """Add or replace documents: a JSON list (docs.jsonl schema) or uploaded files."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
            try:
                files = [(_safe_name(v.filename), v.file) for _, v in form.multi_items()
                         if not isinstance(v, str)]
                if not files:
                    raise MogragError("no file in the upload; send files as multipart parts")
                docs = await run_in_threadpool(_load_uploads, files)
            finally:
                await form.close()
        elif ctype in ("application/json", ""):
            raw = await request.body()
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MogragError(f"body is not valid JSON ({exc})") from None
            if isinstance(data, dict):  # also accept {"documents": [...]} or one document
                data = data.get("documents", [data])
            try:
                items = docs_adapter.validate_python(data)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                ) from None
            docs = [Document(id=i.id, text=i.text, metadata=i.metadata) for i in items]
        else:
            raise HTTPException(415, f"unsupported content type {ctype!r}; send "
                                     "application/json or multipart/form-data")
        _check_docs(docs)
        # the write finishes (or fails) as a whole even if the client goes away meanwhile
        report, generation = await run_in_threadpool(service.add, docs)
        return JSONResponse({
            "added": report.added, "replaced": report.replaced, "ids": [d.id for d in docs],
            "chunks": report.chunks, "embedded": report.embedded,
            "seconds": round(report.seconds, 3), "generation": generation,
        }, headers={"X-Mograg-Generation": str(generation)})

    @app.delete("/documents/{doc_id:path}", dependencies=[Depends(require_write)],
                tags=["write"])
    async def delete_document(doc_id: str) -> Any:
        """Delete one document by id."""
        if doc_id not in service.handle().index.snapshot.doc_index:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        report, generation = await run_in_threadpool(service.delete, [doc_id])
        if not report.deleted:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return JSONResponse({"deleted": doc_id, "generation": generation},
                            headers={"X-Mograg-Generation": str(generation)})

    # ------------------------------------------------------------------ the page
    def page_route(url: str, filename: str, media_type: str) -> None:
        path = WEB_DIR / filename

        async def page() -> Any:
            return Response(path.read_bytes(), media_type=media_type, headers=PAGE_HEADERS)

        app.add_api_route(url, page, methods=["GET"], include_in_schema=False,
                          name=f"page:{filename}")

    for url, (filename, media_type) in WEB_FILES.items():
        page_route(url, filename, media_type)

    # ------------------------------------------------------------------ extensions
    ctx = ServerContext(service=service, require_read=require_read, require_write=require_write,
                        max_budget=max_budget, max_query_chars=max_query_chars,
                        settings={"private": private, "max_body_bytes": max_body_bytes})
    for ext in [*_EXTENSIONS, *extensions]:
        ext(app, ctx)
    app.state.mograg = ctx
    return app


def _version() -> str:
    from mograg import __version__

    return __version__


def _inspect(h: _Handle, req: Any) -> dict[str, Any]:
    """The page's data for one query (see ``GET /api/inspect``)."""
    ix = h.index
    snap = ix.snapshot
    t0 = time.perf_counter()
    q = ix.encode_queries([req.query])[0]
    t1 = time.perf_counter()
    res = ix.search(q, budget=req.budget, level=req.level, mode=req.mode, router=req.router,
                    strategy=req.strategy)
    t2 = time.perf_counter()
    rankings = ix.rank(q, req.mode)
    routing = res.routing or {}
    weights = routing.get("weights") or {}
    chosen = set(routing.get("chosen") or [])
    levels = []
    for j, (size, ranking) in enumerate(zip(ix.levels, rankings, strict=True)):
        name = f"level:{size}"
        hits = []
        for c, s in zip(ranking.ids[: req.top].tolist(), ranking.scores[: req.top].tolist(),
                        strict=True):
            doc, start, end = snap.chunk_span(j, c)
            text = snap.text(doc)[start:end]
            hits.append({
                "doc_id": snap.doc_ids[doc], "start": start, "end": end,
                "score": round(float(s), 6), "n_tokens": int(snap.levels[j][c]["n_tokens"]),
                "preview": text if len(text) <= PREVIEW_CHARS
                else text[: PREVIEW_CHARS - 1].rstrip() + "…",
            })
        levels.append({"name": name, "size": size, "weight": weights.get(name),
                       "chosen": name in chosen, "hits": hits})
    return {
        "query": req.query,
        "settings": {"budget": req.budget, "mode": req.mode, "router": req.router,
                     "strategy": req.strategy, "level": req.level, "top": req.top},
        "routing": routing,
        "weights": [{"name": n, "weight": w, "chosen": n in chosen} for n, w in weights.items()],
        "levels": levels,
        "result": res.to_dict(),
        "generation": h.generation,
        "timings_ms": {"encode": round(1000 * (t1 - t0), 2), "search": round(1000 * (t2 - t1), 2),
                       "levels": round(1000 * (time.perf_counter() - t2), 2)},
    }


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

    from mograg.answer.generate import make_ask_extension
    from mograg.config import load_config, resolve_generator_settings

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
