"""The embedder interface: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into normalised vectors.

    Plain attributes satisfy the read-only members below.
    """

    @property
    def name(self) -> str:
        """Identifier recorded in the index manifest (and salting the cache keys)."""
        ...

    @property
    def dim(self) -> int:
        """Vector width."""
        ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in WordPieces, that the model reads; longer input is truncated."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array with L2-normalised rows."""
        ...


def normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (zero rows stay zero) and return float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.size:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        np.maximum(norms, 1e-12, out=norms)
        x /= norms
    return x



def embed_queries(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Embed questions: ``embedder.embed_queries`` when it has one (e5's ``query:`` prefix)."""
    fn = getattr(embedder, "embed_queries", None)
    return fn(texts) if fn is not None else embedder.embed(texts)


def cosine_floor(name: str) -> float:
    """Typical cosine of two unrelated texts under the embedder called ``name``.

    0 for MiniLM (and any embedder not listed); e5's cosines start near 0.75.
    """
    from mograg.embed.e5 import COSINE_FLOOR, NAME

    return COSINE_FLOOR if name == NAME else 0.0


def calibrate_cosine(scores: np.ndarray, floor: float) -> np.ndarray:
    """Rescale cosines so that ``floor`` maps to 0 and 1 stays 1 (identity when floor=0).

    Fixed thresholds (graph k-NN edges, the extractive answer's relevance floor) were set on
    MiniLM's range; this puts another embedder's cosines on the same scale.
    """
    if floor == 0.0:
        return scores
    return (scores - floor) / (1.0 - floor)
