"""Granularity routers: a training-free entropy router and small trained models.

A router maps a query (its embedding plus cheap statistics of what each
granularity retrieved) to one weight per granularity. Trained routers learn from
*soft labels*: how well each granularity did on training questions; training lives in
:mod:`mograg.retrieval.router_training`.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mograg.errors import MogragError
from mograg.store.storage import (
    MANIFEST,
    atomic_write_json,
    fsync_dir,
    read_manifest,
    write_bytes_durable,
    writer_lock,
)
from mograg.types import ROUTER_MODELS, Granularity, LevelRanking, Query

if TYPE_CHECKING:
    from mograg.retrieval.view import IndexView


TOP_K = 10
STATS_PER_GRANULARITY = 8
ROUTER_DIR = "routers"
MODELS = ROUTER_MODELS
RIDGE_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0)
RIDGE_TEMPERATURE = 0.05
LOSSES = ("ce", "bce")
LABEL_SCHEMES = ("softmax", "mog")
BUILT_IN_ROUTERS = ("entropy", "rrf-levels", "shipped")
_ROUTER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_router_name(name: str) -> str:
    """``name`` if it can name a trained router, else :class:`MogragError` (one line).

    A name is a name, not a path: 1-64 letters, digits, ``_``, ``-`` or ``.`` starting
    with a letter or digit (so no separators, no ``..``), and not a built-in router or
    fixed granularity (``entropy``, ``rrf-levels``, ``shipped``, ``level:*``, ``graph:*``).
    """
    if name in BUILT_IN_ROUTERS or name.startswith(("level:", "graph:")):
        raise MogragError(f"router name {name!r} is built in; choose another --name")
    if not _ROUTER_NAME_RE.fullmatch(name) or ".." in name:
        shown = name.encode("utf-8", "backslashreplace").decode("utf-8")[:80]
        raise MogragError(
            f"invalid router name {shown!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (numerically stable)."""
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _stats(values: np.ndarray, temperature: float) -> list[float]:
    """top-1, margin top-1 vs top-k, mean of top-k, normalised entropy of softmaxed top-k."""
    if len(values) == 0:
        return [0.0, 0.0, 0.0, 1.0]
    v = np.sort(values.astype(np.float64))[::-1][:TOP_K]
    p = softmax(v / temperature)
    ent = float(-(p * np.log(p + 1e-12)).sum() / np.log(max(len(v), 2)))
    return [float(v[0]), float(v[0] - v[-1]), float(v.mean()), ent]


def ranking_stats(ranking: LevelRanking) -> list[float]:
    """Dense and BM25 statistics of one level's candidates (8 numbers)."""
    dense = _stats(ranking.dense, 0.05)
    bm = ranking.bm25
    top = float(bm.max()) if len(bm) else 0.0
    lex = _stats(bm / top if top > 0 else bm, 0.1)
    lex[0] = float(np.log1p(top))
    return dense + lex


def features(query: Query, rankings: Sequence[LevelRanking]) -> np.ndarray:
    """The router's input: query embedding, per-level retrieval statistics, query length."""
    stats = [s for r in rankings for s in ranking_stats(r)]
    extra = [float(np.log1p(query.n_tokens))]
    return np.concatenate([query.vector.astype(np.float64), np.array(stats + extra)])



class Router:
    """Common interface: ``weights(index, query, rankings, names) -> (G,)`` summing to 1."""

    name: str

    def weights(
        self, index: IndexView, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
    ) -> np.ndarray:
        """One weight per granularity."""
        raise NotImplementedError


class EntropyRouter(Router):
    """Training-free: a budget-aware prior sharpened by how peaked each level's scores are.

    The prior favours the level of about half the budget (a context of two or more
    chunks); a level whose dense candidate scores are more peaked (low entropy of the
    softmaxed top-k similarities: one chunk clearly stands out) gains weight. On the
    dev sets, peakedness alone picks worse levels than a fixed size, so it only tilts
    the prior. With a graph, each level's weight goes to its one-hop graph
    granularity (``graph:<size>:r=1``): on corpora without links it returns the same
    chunks, and where documents link by title it measured far better (see README).
    """

    name = "entropy"

    def __init__(self, budget: int = 256, prior: float = 2.0, sharpness: float = 5.0) -> None:
        self.budget = budget
        self.prior = prior
        self.sharpness = sharpness

    def weights(
        self, index: IndexView, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
    ) -> np.ndarray:
        """One weight per granularity (levels, or their one-hop graph granularities)."""
        sizes = np.array(index.levels[: len(rankings)], dtype=np.float64)
        prior = -np.abs(np.log2(sizes) - np.log2(max(self.budget / 2, 1.0)))
        peak = np.array([1.0 - _stats(r.dense, 0.05)[3] for r in rankings])
        level_w = softmax(self.prior * prior + self.sharpness * peak)
        position = {n: g for g, n in enumerate(names)}
        w = np.zeros(len(names))
        for size, lw in zip(index.levels[: len(rankings)], level_w.tolist(), strict=True):
            level = str(Granularity.level(size))
            w[position.get(str(Granularity.graph(size, 1)), position[level])] = lw
        return w


@dataclass
class TrainedRouter(Router):
    """Softmax regression or a one-hidden-layer MLP over standardised features."""

    name: str
    names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    params: dict[str, np.ndarray]
    model: str = "mlp"
    loss: str = "ce"
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs for feature rows ``x``."""
        z = (x - self.mean) / self.scale
        if self.model == "ridge":  # predicted quality per granularity, as softmax logits
            return (z @ self.params["B"] + self.params["y_mean"]) / RIDGE_TEMPERATURE
        if self.model == "mlp":
            h = np.tanh(z @ self.params["W1"] + self.params["b1"])
            return h @ self.params["W2"] + self.params["b2"]
        return z @ self.params["W"] + self.params["b"]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Weights (rows sum to 1) for feature rows ``x``."""
        out = self.logits(np.atleast_2d(x))
        if self.loss == "bce":
            p = 1.0 / (1.0 + np.exp(-out))
            return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        return softmax(out, axis=1)

    def weights(
        self, index: IndexView, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
    ) -> np.ndarray:
        """Weights for one query; the router must know exactly these granularities."""
        if list(names) != self.names:
            raise MogragError(
                f"router {self.name!r} was trained for {', '.join(self.names)} but this index "
                f"has {', '.join(names)}; retrain it with mograg train-router"
            )
        return self.predict(features(query, rankings))[0]

    # --------------------------------------------------------------- persistence
    def to_bytes(self) -> bytes:
        """Serialise to .npz bytes (arrays plus a JSON header)."""
        header = {
            "name": self.name,
            "names": self.names,
            "model": self.model,
            "loss": self.loss,
            "meta": self.meta,
            "feature_schema": feature_schema(len(self.names), len(self.mean)),
        }
        buf = io.BytesIO()
        params: dict[str, Any] = {f"p_{k}": v for k, v in self.params.items()}
        np.savez(
            buf,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            mean=self.mean,
            scale=self.scale,
            **params,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedRouter:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            params = {k[2:]: np.array(z[k]) for k in z.files if k.startswith("p_")}
            return cls(
                name=header["name"],
                names=header["names"],
                mean=np.array(z["mean"]),
                scale=np.array(z["scale"]),
                params=params,
                model=header["model"],
                loss=header["loss"],
                meta=header.get("meta", {}),
            )


def feature_schema(n_granularities: int, n_features: int) -> dict[str, Any]:
    """Description of the feature vector, saved with the router."""
    return {
        "embedding_dim": n_features - 1 - STATS_PER_GRANULARITY * n_granularities,
        "n_features": n_features,
        "per_level_stats": [
            "dense_top1", "dense_margin", "dense_mean", "dense_entropy",
            "bm25_log_top1", "bm25_margin", "bm25_mean", "bm25_entropy",
        ],
        "n_granularities": n_granularities,
    }



def save_router(index: IndexView, router: TrainedRouter, make_default: bool = True) -> None:
    """Store a trained router inside the index (atomic) and record it in the manifest."""
    store_router(index, router.name, router.to_bytes(),
                 {"names": router.names, "model": router.model, "loss": router.loss},
                 make_default)


def store_router(
    index: IndexView, name: str, data: bytes, entry: dict[str, Any], make_default: bool = True,
    extra: dict[str, bytes] | None = None,
) -> None:
    """Write a router file (and ``extra`` files, by entry key) into the index, atomically,
    with its manifest entry."""
    root = index.root
    check_router_name(name)
    with writer_lock(root):
        manifest = read_manifest(root)
        (root / ROUTER_DIR).mkdir(exist_ok=True)
        files = {"file": (f"{name}.npz", data)}
        for key, blob in (extra or {}).items():  # e.g. "span_file" -> routers/NAME-span.npz
            files[key] = (f"{name}-{key.removesuffix('_file')}.npz", blob)
        for fname, blob in files.values():
            tmp = root / ROUTER_DIR / f".{fname}.tmp"
            write_bytes_durable(tmp, blob)
            os.replace(tmp, root / ROUTER_DIR / fname)
        fsync_dir(root / ROUTER_DIR)
        routers = dict(manifest.get("routers", {}))
        routers[name] = {**{k: f"{ROUTER_DIR}/{f}" for k, (f, _) in files.items()}, **entry}
        manifest["routers"] = routers
        if make_default:
            manifest["default_router"] = name
        manifest["generation"] = int(manifest["generation"]) + 1
        atomic_write_json(root / MANIFEST, manifest)
    index.router_cache.pop(name, None)
    index.refresh()


def load_router(index: IndexView, spec: str | None, budget: int = 256) -> Router:
    """Resolve a router spec: None (the index's trained router, else the shipped model
    when it fits the index's granularities, else entropy), "entropy", "shipped" or a name."""
    manifest = index.manifest
    if spec is None:
        spec = manifest.get("default_router")
        if spec is None:
            from mograg.retrieval.granularity_model import default_router_for

            shipped = default_router_for(index)
            return cast(Router, shipped) if shipped is not None else EntropyRouter(budget)
    if spec == "entropy":
        return EntropyRouter(budget)
    if spec == "shipped":
        from mograg.retrieval.granularity_model import shipped_router

        return cast(Router, shipped_router(index))
    routers = manifest.get("routers", {})
    if spec not in routers:
        fixed = ["level:SIZE", "graph:SIZE:r=R"] if manifest.get("graph") else ["level:SIZE"]
        known = ", ".join(["entropy", "shipped", "rrf-levels", *sorted(routers), *fixed])
        raise MogragError(f"no router {spec!r} in {index.root}; known: {known}")
    cache = index.router_cache
    if spec not in cache:
        file = routers[spec]["file"]
        path = index.root / file
        parts = Path(file).parts
        if len(parts) != 2 or parts[0] != ROUTER_DIR or parts[1] in (".", ".."):
            raise MogragError(f"router {spec!r} points outside {index.root / ROUTER_DIR} "
                              f"({file!r}); retrain it with a plain --name")
        try:
            if routers[spec].get("model") == "granularity-model":
                from mograg.retrieval.granularity_model import load_tuned

                span_file = routers[spec].get("span_file")
                span = (index.root / span_file).read_bytes() if span_file else None
                cache[spec] = cast(Router, load_tuned(path.read_bytes(), spec, span))
            else:
                cache[spec] = TrainedRouter.from_bytes(path.read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            raise MogragError(f"router file {path} is unreadable ({exc}); retrain it") from None
    return cache[spec]
