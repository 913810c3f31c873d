"""Write endpoints: ``POST /documents`` (JSON list or file upload), ``DELETE /documents/{id}``."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mograg.errors import MogragError
from mograg.server.endpoint import GENERATION_HEADER
from mograg.server.extensions import ServerContext
from mograg.server.limits import MAX_FIELDS, MAX_FILES
from mograg.server.schemas import RequestModels
from mograg.server.uploads import check_docs, load_uploads, safe_name
from mograg.text.documents import record_to_document
from mograg.text.safejson import JsonValueError, loads_checked


def write_router(ctx: ServerContext, models: RequestModels) -> APIRouter:
    """The write endpoints over ``ctx.service`` (they need the API key)."""
    service, require_write = ctx.service, ctx.require_write
    docs_adapter = models.documents
    routes = APIRouter()

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

    @routes.post("/documents", dependencies=[Depends(require_write)], tags=["write"],
              openapi_extra=add_doc_body)
    async def add_documents(request: Request) -> Any:
        """Add or replace documents: a JSON list (docs.jsonl schema) or uploaded files."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
            try:
                files = [(safe_name(v.filename), v.file) for _, v in form.multi_items()
                         if not isinstance(v, str)]
                if not files:
                    raise MogragError("no file in the upload; send files as multipart parts")
                docs = await run_in_threadpool(load_uploads, files)
            finally:
                await form.close()
        elif ctype in ("application/json", ""):
            raw = await request.body()
            try:  # deep nesting, huge numbers, NaN, lone surrogates: 400, never 500
                data = loads_checked(raw)
            except JsonValueError as exc:
                raise MogragError(f"body is not acceptable JSON: {exc}") from None
            if isinstance(data, dict):  # also accept {"documents": [...]} or one document
                data = data.get("documents", [data])
            try:
                items = docs_adapter.validate_python(data)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                ) from None
            docs = []
            for k, item in enumerate(items):  # the CLI's validation of JSONL records
                try:
                    docs.append(record_to_document(item.model_dump(), item.id))
                except JsonValueError as exc:
                    raise MogragError(f"document {k} ({item.id!r}): {exc}") from None
        else:
            raise HTTPException(415, f"unsupported content type {ctype!r}; send "
                                     "application/json or multipart/form-data")
        check_docs(docs)
        # the write finishes (or fails) as a whole even if the client goes away meanwhile
        report, generation = await run_in_threadpool(service.add, docs)
        return JSONResponse({
            "added": report.added, "replaced": report.replaced, "ids": [d.id for d in docs],
            "chunks": report.chunks, "embedded": report.embedded,
            "seconds": round(report.seconds, 3), "generation": generation,
        }, headers={GENERATION_HEADER: str(generation)})

    @routes.delete("/documents/{doc_id:path}", dependencies=[Depends(require_write)],
                tags=["write"])
    async def delete_document(doc_id: str) -> Any:
        """Delete one document by id."""
        if doc_id not in service.handle().index.snapshot.doc_index:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        report, generation = await run_in_threadpool(service.delete, [doc_id])
        if not report.deleted:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return JSONResponse({"deleted": doc_id, "generation": generation},
                            headers={GENERATION_HEADER: str(generation)})
    return routes
