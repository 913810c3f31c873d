"""BM25 per level, with bm25s (English stopwords, Snowball stemming)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np

from mograg.storage import fsync_tree


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """BM25 terms of each text (lowercased, stopwords removed, stemmed)."""
    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False, return_ids=False
    )


class LexicalIndex:
    """A BM25 index whose row i is chunk i of one level."""

    def __init__(self, model: bm25s.BM25 | None, n_docs: int) -> None:
        self._model = model
        self.n_docs = n_docs

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        """Index ``texts`` (one per chunk)."""
        if not texts:
            return cls(None, 0)
        model = bm25s.BM25()
        model.index(tokenize(texts), show_progress=False)
        return cls(model, len(texts))

    def save(self, directory: Path) -> None:
        """Write to a new directory (fsynced)."""
        directory.mkdir(parents=True)
        (directory / "n_docs").write_text(str(self.n_docs))
        if self._model is not None:
            self._model.save(str(directory), show_progress=False)
        fsync_tree(directory)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """Open a saved index (memory-mapped)."""
        n_docs = int((directory / "n_docs").read_text())
        if n_docs == 0:
            return cls(None, 0)
        model = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
        return cls(model, n_docs)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every row for the (tokenized) query."""
        if self._model is None or not query_terms:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self._model.get_scores(query_terms), dtype=np.float32)
