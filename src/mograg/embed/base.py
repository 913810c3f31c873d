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

