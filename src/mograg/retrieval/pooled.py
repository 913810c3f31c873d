"""What the shipped models share: ridge regression pooled over corpora, and package data.

Every corpus weighs the same in the fit however many rows it has (a 1,000-question set
must not drown a 100-question one), and standardised features are clipped so that a new
corpus whose statistics fall outside the training range cannot extrapolate wildly.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np


def pooled_ridge(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], alpha: float, clip: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, scale, coef, intercept)`` of a corpus-weighted ridge fit of ``ys`` on ``xs``.

    ``xs[k]``/``ys[k]`` are corpus ``k``'s rows; targets may be one column or several.
    Deterministic (closed form).
    """
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys).astype(np.float64)
    w = np.concatenate([np.full(len(a), 1.0 / len(a)) for a in xs])
    w /= w.sum()
    mean = w @ x
    scale = np.sqrt(w @ (x - mean) ** 2)
    scale[scale < 1e-8] = 1.0
    z = np.clip((x - mean) / scale, -clip, clip)
    intercept = w @ y
    zw = z * w[:, None]
    coef = np.linalg.solve(z.T @ zw + alpha / len(x) * np.eye(z.shape[1]),
                           zw.T @ (y - intercept))
    return mean, scale, coef, np.asarray(intercept)


def package_data(name: str) -> bytes | None:
    """Bytes of ``mograg/data/<name>`` (None when the installation lacks it)."""
    try:
        return resources.files("mograg").joinpath("data").joinpath(name).read_bytes()
    except (FileNotFoundError, OSError):
        return None
