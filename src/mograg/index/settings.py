"""How an index is built: one :class:`IndexSettings` for ``Index.create``, ``mograg index``
and ``python -m mograg.index.ingest``, and the manifest it starts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mograg.embed.embedders import Embedder
from mograg.errors import MogragError
from mograg.graph.build import GraphSettings
from mograg.store.ann import AnnSettings
from mograg.store.manifest import Manifest
from mograg.store.milvus_config import new_store_config, parse_store
from mograg.store.storage import FORMAT_VERSION
from mograg.text.context import CONTEXT_VERSION
from mograg.text.levels import DEFAULT_LEVELS, parse_levels

VECTOR_DTYPES = ("float32", "float16")
LEVEL_VECTORS = ("embed", "pool")


@dataclass(frozen=True)
class IndexSettings:
    """Creation settings of an index (fixed once it exists; recorded in its manifest).

    Attributes:
        levels: level sizes in tokens, finest first.
        embedder: ``None``/``minilm`` (bundled), ``st:/path`` or ``openai:MODEL@URL``.
        vector_dtype: ``float32`` or ``float16``.
        level_vectors: coarser levels' vectors: ``pool`` children, or ``embed``.
        graph: build the MoGG graph with these settings (None: no graph).
        store: search store: None/``local``, ``milvus-lite:PATH`` or ``milvus://HOST:PORT``.
        context: BM25-count each chunk with its document's title, periods and section
            heading, and embed it with them where it has a section (mograg.text.context);
            returned text is unchanged. Off by default (``mograg index`` turns it on
            for PDF-only indexes): the shipped models were fitted without it, and on the
            dev sets it moves the default search by -0.4 to +1.9 points with the graph
            (bench/results/context_devsets-graph-s4.json).
        ann: approximate search of large levels (None: always exact; ignored with a store,
            which searches its own way).
    """

    levels: tuple[int, ...] = DEFAULT_LEVELS
    embedder: str | None = None
    vector_dtype: str = "float32"
    level_vectors: str = "pool"
    graph: GraphSettings | None = None
    store: str | None = None
    context: bool = False
    ann: AnnSettings | None = field(default_factory=AnnSettings.default)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", parse_levels(self.levels))
        if self.vector_dtype not in VECTOR_DTYPES:
            raise MogragError(
                f"invalid vector dtype {self.vector_dtype!r}; use float32 or float16"
            )
        if self.level_vectors not in LEVEL_VECTORS:
            raise MogragError(
                f"invalid level_vectors {self.level_vectors!r}; use embed or pool"
            )

    @classmethod
    def from_options(
        cls,
        levels: str | Sequence[int] | None = None,
        embedder: str | None = None,
        float16: bool = False,
        level_vectors: str | None = None,
        graph: bool = False,
        graph_knn: int | None = None,
        graph_radius: int | None = None,
        store: str | None = None,
        context: bool = False,
    ) -> IndexSettings:
        """Settings from command-line options (None: not given, the default applies)."""
        graph_settings = None
        if graph or graph_knn is not None or graph_radius is not None:
            graph_settings = GraphSettings(k=graph_knn or 0, max_radius=graph_radius or 1)
        return cls(
            levels=parse_levels(levels) if levels is not None else DEFAULT_LEVELS,
            embedder=embedder,
            vector_dtype="float16" if float16 else "float32",
            level_vectors=level_vectors or "pool",
            graph=graph_settings,
            store=store,
            context=context,
        )

    def new_manifest(self, embedder: Embedder) -> Manifest:
        """The manifest of a new, empty index built with ``embedder``."""
        manifest: Manifest = {
            "format": FORMAT_VERSION,
            "generation": 0,
            "levels": list(self.levels),
            "embedder": {"spec": self.embedder or "minilm", "name": embedder.name},
            "dim": int(embedder.dim),
            "max_tokens": int(embedder.max_tokens),
            "vector_dtype": self.vector_dtype,
            "level_vectors": self.level_vectors,
            "segments": [],
            "derived": {},
            "created": time.time(),
        }
        if self.store:
            store_cfg = new_store_config(self.store)
            if store_cfg is not None:
                manifest["store"] = store_cfg
        if self.graph is not None:
            manifest["graph"] = self.graph.to_dict()
        if self.context:
            manifest["context"] = CONTEXT_VERSION
        if self.ann is not None and not manifest.get("store"):
            manifest["ann"] = self.ann.to_dict()
        return manifest


def check_existing(
    root: Path,
    manifest: Manifest,
    levels: str | None = None,
    embedder: str | None = None,
    float16: bool = False,
    level_vectors: str | None = None,
    store: str | None = None,
) -> None:
    """Creation options given for an existing index must match it (None: not given)."""
    fix = "creation options only apply to a new index: drop them or use a new --index"
    have_levels = list(manifest["levels"])
    if levels is not None and list(parse_levels(levels)) != have_levels:
        have = ",".join(map(str, have_levels))
        raise MogragError(f"{root} has levels {have}, not {levels}; {fix}")
    if embedder is not None and embedder != manifest["embedder"]["spec"]:
        raise MogragError(f"{root} uses embedder {manifest['embedder']['spec']!r}; {fix}")
    if float16 and manifest["vector_dtype"] != "float16":
        raise MogragError(f"{root} stores {manifest['vector_dtype']} vectors; {fix}")
    if level_vectors is not None and level_vectors != manifest["level_vectors"]:
        raise MogragError(f"{root} uses --level-vectors {manifest['level_vectors']}; {fix}")
    if store is not None:
        have_store = manifest.get("store") or {}
        if (parse_store(store) or {}).get("uri") != have_store.get("uri"):
            raise MogragError(
                f"{root} uses the {have_store.get('uri', 'local')} store; "
                "--store only applies to a new index"
            )
