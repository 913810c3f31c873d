"""Granularity routers: a training-free entropy router and small trained models.

A router maps a query (its embedding plus cheap statistics of what each
granularity retrieved) to one weight per granularity. Trained routers learn from
*soft labels*: how well each granularity did on training questions.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from mograg.errors import MogragError
from mograg.graph.build import graph_name
from mograg.retrieval.rank import LevelRanking, Query
from mograg.store.storage import MANIFEST, atomic_write_json, read_manifest, writer_lock

if TYPE_CHECKING:
    from mograg.index.core import Index

TOP_K = 10
STATS_PER_GRANULARITY = 8
ROUTER_DIR = "routers"
MODELS = ("ridge", "prior", "softmax", "mlp")
RIDGE_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0)
RIDGE_TEMPERATURE = 0.05
LOSSES = ("ce", "bce")
LABEL_SCHEMES = ("softmax", "mog")


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _stats(values: np.ndarray, temperature: float) -> list[float]:
    """top-1, margin top-1 vs top-k, mean of top-k, normalised entropy of softmaxed top-k."""
    if len(values) == 0:
        return [0.0, 0.0, 0.0, 1.0]
    v = np.sort(values.astype(np.float64))[::-1][:TOP_K]
    p = _softmax(v / temperature)
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


def soft_labels(
    scores: np.ndarray, scheme: str = "softmax", temperature: float = 0.05
) -> np.ndarray:
    """Soft targets from per-granularity quality scores (questions x granularities).

    ``softmax``: softmax(score / temperature), ties share mass equally;
    ``mog``: MoG's scheme, 0.8 to the best granularity and 0.2 to the second.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scheme == "softmax":
        return _softmax(scores / temperature, axis=1)
    if scheme == "mog":
        out = np.zeros_like(scores)
        order = np.argsort(-scores, axis=1, kind="stable")
        rows = np.arange(len(scores))
        out[rows, order[:, 0]] = 0.8 if scores.shape[1] > 1 else 1.0
        if scores.shape[1] > 1:
            out[rows, order[:, 1]] = 0.2
        return out
    raise MogragError(f"unknown label scheme {scheme!r}; use softmax or mog")


class Router:
    """Common interface: ``weights(index, query, rankings, names) -> (G,)`` summing to 1."""

    name: str

    def weights(
        self, index: Index, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
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
        self, index: Index, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
    ) -> np.ndarray:
        """One weight per granularity (levels, or their one-hop graph granularities)."""
        sizes = np.array(index.levels[: len(rankings)], dtype=np.float64)
        prior = -np.abs(np.log2(sizes) - np.log2(max(self.budget / 2, 1.0)))
        peak = np.array([1.0 - _stats(r.dense, 0.05)[3] for r in rankings])
        level_w = _softmax(self.prior * prior + self.sharpness * peak)
        position = {n: g for g, n in enumerate(names)}
        w = np.zeros(len(names))
        for size, lw in zip(index.levels[: len(rankings)], level_w.tolist(), strict=True):
            w[position.get(graph_name(size, 1), position[f"level:{size}"])] = lw
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
        return _softmax(out, axis=1)

    def weights(
        self, index: Index, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
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
        np.savez(
            buf,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            mean=self.mean,
            scale=self.scale,
            **{f"p_{k}": v for k, v in self.params.items()},
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


def train_router(
    x: np.ndarray,
    targets: np.ndarray,
    names: Sequence[str],
    name: str = "default",
    model: str = "mlp",
    loss: str = "ce",
    hidden: int = 32,
    l2: float | None = None,
    seed: int = 0,
    max_iter: int = 300,
) -> TrainedRouter:
    """Fit a router to soft targets (rows of ``targets`` sum to 1) with L-BFGS.

    ``l2=None`` picks the regularisation strength from ``L2_GRID`` by 3-fold
    cross-validation on the training questions (small training sets overfit the
    384-d query embedding easily). Deterministic for a given ``seed``.
    """
    with threadpool_limits(1, user_api="blas"):  # tiny matrices: threads only contend
        return _train(x, targets, names, name, model, loss, hidden, l2, seed, max_iter)


def _train(
    x: np.ndarray, targets: np.ndarray, names: Sequence[str], name: str, model: str,
    loss: str, hidden: int, l2: float | None, seed: int, max_iter: int,
) -> TrainedRouter:
    if l2 is None:
        l2 = select_l2(x, targets, names, model=model, loss=loss, hidden=hidden, seed=seed)
    if model not in MODELS or model in ("ridge", "prior"):
        known = ", ".join(m for m in MODELS if m not in ("ridge", "prior"))
        raise MogragError(f"unknown router model {model!r} for soft labels; use {known} "
                          "(ridge: train_ridge_router)")
    if loss not in LOSSES:
        raise MogragError(f"unknown router loss {loss!r}; use ce or bce")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if len(x) < 2:
        raise MogragError("a router needs at least 2 training questions")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    g = y.shape[1]
    rng = np.random.default_rng(seed)
    if model == "mlp":
        shapes = {"W1": (d, hidden), "b1": (hidden,), "W2": (hidden, g), "b2": (g,)}
        init = {
            "W1": rng.normal(0, 1 / np.sqrt(d), (d, hidden)),
            "b1": np.zeros(hidden),
            "W2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, g)),
            "b2": np.zeros(g),
        }
    else:
        shapes = {"W": (d, g), "b": (g,)}
        init = {"W": np.zeros((d, g)), "b": np.zeros(g)}
    keys = list(shapes)
    sizes = [int(np.prod(shapes[k])) for k in keys]

    def unpack(theta: np.ndarray) -> dict[str, np.ndarray]:
        out, off = {}, 0
        for k, s in zip(keys, sizes, strict=True):
            out[k] = theta[off : off + s].reshape(shapes[k])
            off += s
        return out

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = unpack(theta)
        if model == "mlp":
            h = np.tanh(z @ p["W1"] + p["b1"])
            out = h @ p["W2"] + p["b2"]
        else:
            out = z @ p["W"] + p["b"]
        if loss == "ce":
            lse = out.max(axis=1, keepdims=True)
            logp = out - lse - np.log(np.exp(out - lse).sum(axis=1, keepdims=True))
            value = -(y * logp).sum() / n
            d_out = (np.exp(logp) - y) / n
        else:
            sig = 1.0 / (1.0 + np.exp(-out))
            value = -(y * np.log(sig + 1e-12) + (1 - y) * np.log(1 - sig + 1e-12)).sum() / n
            d_out = (sig - y) / n
        grads: dict[str, np.ndarray] = {}
        weights = [k for k in keys if k.startswith("W")]
        value += 0.5 * l2 * sum(float((p[k] ** 2).sum()) for k in weights)
        if model == "mlp":
            grads["W2"] = h.T @ d_out + l2 * p["W2"]
            grads["b2"] = d_out.sum(axis=0)
            d_h = (d_out @ p["W2"].T) * (1 - h**2)
            grads["W1"] = z.T @ d_h + l2 * p["W1"]
            grads["b1"] = d_h.sum(axis=0)
        else:
            grads["W"] = z.T @ d_out + l2 * p["W"]
            grads["b"] = d_out.sum(axis=0)
        return value, np.concatenate([grads[k].ravel() for k in keys])

    theta0 = np.concatenate([init[k].ravel() for k in keys])
    t0 = time.perf_counter()
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter})
    meta = {
        "n_train": int(n),
        "final_loss": float(res.fun),
        "iterations": int(res.nit),
        "train_seconds": round(time.perf_counter() - t0, 4),
        "hidden": hidden if model == "mlp" else 0,
        "l2": l2,
        "seed": seed,
        "trained_at": time.time(),
    }
    return TrainedRouter(
        name=name, names=list(names), mean=mean, scale=scale, params=unpack(res.x),
        model=model, loss=loss, meta=meta,
    )


def train_ridge_router(
    x: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    name: str = "default",
    alpha: float | None = None,
    seed: int = 0,
) -> TrainedRouter:
    """Predict each granularity's quality (e.g. recall) by ridge regression; route to the best.

    With strong regularisation the prediction shrinks to the training mean, so the router
    falls back to the best fixed granularity instead of guessing: it deviates only where
    the features say so. ``alpha=None`` picks the strength by 3-fold cross-validation
    on the realised quality of the chosen granularity. Closed form; milliseconds.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if len(x) < 2:
        raise MogragError("a router needs at least 2 training questions")
    t0 = time.perf_counter()
    if alpha is None:
        alpha = _select_alpha(x, y, seed)
    if np.isinf(alpha):  # the "prior" router: the same weights for every query
        mean, scale = x.mean(axis=0), np.ones(x.shape[1])
        b, y_mean = np.zeros((x.shape[1], y.shape[1])), y.mean(axis=0)
    else:
        mean, scale, b, y_mean = _ridge_fit(x, y, alpha)
    prior = bool(np.isinf(alpha))
    meta = {"n_train": len(x), "alpha": None if prior else alpha,
            "kind": "prior" if prior else "ridge", "seed": seed, "trained_at": time.time(),
            "train_seconds": round(time.perf_counter() - t0, 4)}
    return TrainedRouter(name=name, names=list(names), mean=mean, scale=scale,
                         params={"B": b, "y_mean": y_mean}, model="ridge", loss="mse",
                         meta=meta)


def _ridge_fit(
    x: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    y_mean = y.mean(axis=0)
    n, d = z.shape
    if n < d:  # dual form: (Z Z^T + a I)^-1 on the smaller side
        b = z.T @ np.linalg.solve(z @ z.T + alpha * np.eye(n), y - y_mean)
    else:
        b = np.linalg.solve(z.T @ z + alpha * np.eye(d), z.T @ (y - y_mean))
    return mean, scale, b, y_mean


def _select_alpha(x: np.ndarray, y: np.ndarray, seed: int, folds: int = 3) -> float:
    n = len(x)
    if n < 2 * folds:
        return RIDGE_GRID[-1]
    fold = np.random.default_rng(seed).permutation(n) % folds
    best, best_val = RIDGE_GRID[-1], -np.inf
    for alpha in reversed(RIDGE_GRID):  # ties go to the stronger (safer) shrinkage
        val = 0.0
        for k in range(folds):
            tr, te = fold != k, fold == k
            mean, scale, b, y_mean = _ridge_fit(x[tr], y[tr], alpha)
            pred = ((x[te] - mean) / scale) @ b + y_mean
            val += float(y[te][np.arange(int(te.sum())), pred.argmax(axis=1)].sum())
        if val > best_val + 1e-9:
            best, best_val = alpha, val
    return best


L2_GRID = (0.003, 0.03, 0.3, 3.0, 30.0)


def select_l2(
    x: np.ndarray, targets: np.ndarray, names: Sequence[str], model: str = "mlp",
    loss: str = "ce", hidden: int = 32, seed: int = 0, folds: int = 3,
) -> float:
    """The L2 strength whose held-out argmax choices get the most target mass."""
    n = len(x)
    if n < 2 * folds:
        return L2_GRID[-1]
    fold = np.random.default_rng(seed).permutation(n) % folds
    best, best_val = L2_GRID[-1], -np.inf
    for l2 in L2_GRID:
        val = 0.0
        for k in range(folds):
            tr, te = fold != k, fold == k
            r = train_router(x[tr], targets[tr], names, model=model, loss=loss,
                             hidden=hidden, l2=l2, seed=seed)
            choice = r.predict(x[te]).argmax(axis=1)
            val += float(targets[te][np.arange(int(te.sum())), choice].sum())
        if val > best_val + 1e-9:
            best, best_val = l2, val
    return best


def save_router(index: Index, router: TrainedRouter, make_default: bool = True) -> None:
    """Store a trained router inside the index (atomic) and record it in the manifest."""
    root = index.root
    with writer_lock(root):
        manifest = read_manifest(root)
        (root / ROUTER_DIR).mkdir(exist_ok=True)
        fname = f"{router.name}.npz"
        tmp = root / ROUTER_DIR / f".{fname}.tmp"
        from mograg.store.storage import fsync_dir, write_bytes_durable

        write_bytes_durable(tmp, router.to_bytes())
        import os

        os.replace(tmp, root / ROUTER_DIR / fname)
        fsync_dir(root / ROUTER_DIR)
        routers = dict(manifest.get("routers", {}))
        routers[router.name] = {"file": f"{ROUTER_DIR}/{fname}", "names": router.names,
                                "model": router.model, "loss": router.loss}
        manifest["routers"] = routers
        if make_default:
            manifest["default_router"] = router.name
        manifest["generation"] = int(manifest["generation"]) + 1
        atomic_write_json(root / MANIFEST, manifest)
    index.refresh()


def load_router(index: Index, spec: str | None, budget: int = 256) -> Router:
    """Resolve a router spec: None (index default, else entropy), "entropy", or a name."""
    manifest = index.manifest
    if spec is None:
        spec = manifest.get("default_router") or "entropy"
    if spec == "entropy":
        return EntropyRouter(budget)
    routers = manifest.get("routers", {})
    if spec not in routers:
        fixed = ["level:SIZE", "graph:SIZE:r=R"] if manifest.get("graph") else ["level:SIZE"]
        known = ", ".join(["entropy", *sorted(routers), *fixed])
        raise MogragError(f"no router {spec!r} in {index.root}; known: {known}")
    cache = index._router_cache
    if spec not in cache:
        path = index.root / routers[spec]["file"]
        try:
            cache[spec] = TrainedRouter.from_bytes(path.read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            raise MogragError(f"router file {path} is unreadable ({exc}); retrain it") from None
    return cache[spec]
