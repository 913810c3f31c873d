"""``--store`` values: which search store a new index uses (embedded, Milvus Lite, Milvus)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from mograg.errors import MogragError

STORE_KINDS = ("milvus-lite", "milvus")


def parse_store(spec: str | None) -> dict[str, Any] | None:
    """Parse a ``--store`` value into a store config (``None`` for the embedded store).

    Accepted: ``local``/empty, ``milvus-lite:PATH`` (a file-backed Milvus Lite database;
    ``.db`` is appended if missing), ``milvus://HOST:PORT`` (a Milvus server or cluster
    proxy; ``?index=HNSW`` picks the dense index type, default AUTOINDEX).
    """
    s = (spec or "").strip()
    if s in ("", "local", "embedded"):
        return None
    if s.startswith("milvus-lite:"):
        path = s.split(":", 1)[1]
        if not path:
            raise MogragError("give a path: --store milvus-lite:/path/to/index.db")
        p = Path(path).expanduser().resolve()
        if p.suffix != ".db":
            p = p.with_name(p.name + ".db")
        return {"kind": "milvus-lite", "uri": str(p), "index_type": "FLAT"}
    if s.startswith("milvus://"):
        rest = s[len("milvus://"):]
        rest, _, query = rest.partition("?")
        if not rest:
            raise MogragError("give a host: --store milvus://HOST:PORT")
        params = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        hostport = rest if ":" in rest else f"{rest}:19530"
        return {
            "kind": "milvus",
            "uri": f"http://{hostport}",
            "index_type": params.get("index", "AUTOINDEX").upper(),
        }
    raise MogragError(
        f"unknown store {spec!r}; use local, milvus-lite:PATH or milvus://HOST:PORT"
    )


def new_store_config(spec: str | None) -> dict[str, Any] | None:
    """A store config for a new index: ``parse_store`` plus a unique collection prefix."""
    cfg = parse_store(spec)
    if cfg is not None:
        cfg["prefix"] = f"mograg_{uuid.uuid4().hex[:12]}"
        cfg["lexical"] = "milvus-bm25"
    return cfg

