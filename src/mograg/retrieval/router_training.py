"""Training granularity routers: soft labels from per-granularity scores, L-BFGS and ridge fits.

Trained routers learn from *soft labels*: how well each granularity did on training
questions. The router types themselves live in :mod:`mograg.retrieval.routers`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from mograg.errors import MissingExtraError, MogragError
from mograg.retrieval.routers import (
    LOSSES,
    MODELS,
    RIDGE_GRID,
    TrainedRouter,
    softmax,
)


def soft_labels(
    scores: np.ndarray, scheme: str = "softmax", temperature: float = 0.05
) -> np.ndarray:
    """Soft targets from per-granularity quality scores (questions x granularities).

    ``softmax``: softmax(score / temperature), ties share mass equally;
    ``mog``: MoG's scheme, 0.8 to the best granularity and 0.2 to the second.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scheme == "softmax":
        return softmax(scores / temperature, axis=1)
    if scheme == "mog":
        out = np.zeros_like(scores)
        order = np.argsort(-scores, axis=1, kind="stable")
        rows = np.arange(len(scores))
        out[rows, order[:, 0]] = 0.8 if scores.shape[1] > 1 else 1.0
        if scores.shape[1] > 1:
            out[rows, order[:, 1]] = 0.2
        return out
    raise MogragError(f"unknown label scheme {scheme!r}; use softmax or mog")



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
    try:  # only the softmax and mlp routers need scipy (mograg[train]); ridge does not
        from scipy.optimize import minimize
    except ImportError:
        raise MissingExtraError("scipy", "train", f"Training a {model} router") from None
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

