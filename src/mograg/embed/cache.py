"""Content hashes of texts and embedding with a vector cache keyed by them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from mograg.embed.base import Embedder


def content_hash(text: str, salt: str = "") -> bytes:
    """16-byte BLAKE2b digest of ``text`` (UTF-8), salted with ``salt`` when given.

    The digest is of ``text`` alone for an empty salt, else of ``text + "\\0" + salt``.
    """
    h = hashlib.blake2b(text.encode("utf-8"), digest_size=16)
    if salt:
        h.update(b"\0" + salt.encode("utf-8"))
    return h.digest()


def embed_cached(
    embedder: Embedder, texts: Sequence[str], cache: dict[bytes, np.ndarray] | None
) -> np.ndarray:
    """Embed ``texts``, embedding each distinct text not already in ``cache`` once.

    Args:
        embedder: The embedder; its ``name`` salts the cache keys.
        texts: Strings to embed.
        cache: ``content_hash(text, embedder.name) -> vector``; new vectors are added to it
            (read-only arrays). ``None`` still dedupes within the call.

    Returns:
        ``(len(texts), dim)`` float32 array in input order.
    """
    if isinstance(texts, str):
        raise TypeError("embed_cached() takes a sequence of strings, not a single string")
    n = len(texts)
    if n == 0:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    cache = cache if cache is not None else {}
    keys = [content_hash(t, embedder.name) for t in texts]
    todo: dict[bytes, int] = {}  # key -> index of its first text, for texts not cached
    for i, k in enumerate(keys):
        if k not in cache and k not in todo:
            todo[k] = i
    if todo:
        new = embedder.embed([texts[i] for i in todo.values()])
        new = np.asarray(new, dtype=np.float32)
        new.flags.writeable = False
        for row, k in enumerate(todo):
            cache[k] = new[row]
    first = cache[keys[0]]
    out = np.empty((n, first.shape[0]), dtype=np.float32)
    for i, k in enumerate(keys):
        out[i] = cache[k]
    return out
