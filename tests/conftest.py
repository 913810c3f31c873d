"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mograg.embed.embedders import Embedder


@pytest.fixture(scope="module")
def shared_embedder() -> Iterator[Embedder]:
    """The process-wide default embedder, with fsync off for the module.

    Durability is not under test in modules using this (the crash tests are), and fsync
    dominates the many small writes of a test index on this disk.
    """
    from mograg.index.core import shared_embedder as default_embedder

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        yield default_embedder(None)
