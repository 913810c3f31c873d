"""The manifest: the one JSON file naming an index's current generation (``manifest.json``).

A :class:`Manifest` is the parsed file, a plain dict (written and read as JSON; old indexes
open unchanged), typed here so that every key has one documented meaning.
"""

from __future__ import annotations

from typing import Any, TypedDict


class EmbedderRecord(TypedDict):
    """Which embedder built the vectors."""

    spec: str  # as given: "minilm", "st:/path", "openai:MODEL@URL"
    name: str  # the embedder's name; a different model refuses to open the index


class Manifest(TypedDict, total=False):
    """``manifest.json``; written by ``IndexSettings.new_manifest`` and every commit."""

    format: int  # FORMAT_VERSION of the files
    generation: int  # +1 per commit
    levels: list[int]  # level sizes in tokens, finest first
    embedder: EmbedderRecord
    dim: int
    max_tokens: int
    vector_dtype: str  # "float32" | "float16"
    level_vectors: str  # "pool" | "embed"
    segments: list[str]  # segment directory names under segments/
    derived: dict[str, str]  # derived data directory names: "lexical", "ann", "graph"
    created: float
    updated: float
    store: dict[str, Any]  # external search store (Milvus): kind, uri, prefix, ...
    graph: dict[str, Any]  # GraphSettings.to_dict() when the MoGG graph is on
    ann: dict[str, Any]  # AnnSettings.to_dict(): large levels searched by HNSW graphs
    graph_stats: dict[str, Any]
    routers: dict[str, dict[str, Any]]  # trained routers by name: file, names, model, loss
    default_router: str
    context: str  # chunks indexed with their document context (mograg.text.context)
