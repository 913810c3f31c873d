"""A search on the main thread runs with one BLAS thread and gives the user's setting
back; a search on another thread leaves the setting alone."""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_info, threadpool_limits

from corpus import TOPICS
from mograg.index import blas_threads
from mograg.index.blas_threads import one_blas_thread
from mograg.index.core import Index
from mograg.types import Document


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_one_thread_inside_then_the_setting_is_back():
    # a fresh controller: it limits the BLAS libraries loaded when it is made (other
    # tests may load scipy's own OpenBLAS after an earlier search made one)
    blas_threads._state["controller"] = None
    with one_blas_thread():  # a process's first search may run as it is
        pass
    with threadpool_limits(2, user_api="blas"):
        with one_blas_thread():
            assert _blas_threads() == {1}
        assert _blas_threads() == {2}


def test_a_search_on_another_thread_leaves_the_setting_alone():
    with threadpool_limits(2, user_api="blas"):
        seen: list[set[int]] = []

        def search() -> None:
            with one_blas_thread():
                seen.append(_blas_threads())

        worker = threading.Thread(target=search)
        worker.start()
        worker.join(20)
        assert len(seen) == 1 and _blas_threads() == {2}


def test_search_gives_the_setting_back(tmp_path, shared_embedder):
    ix = Index.create(tmp_path / "ix", levels=[16, 64])
    ix.add([Document(k, v) for k, v in TOPICS.items()])
    with threadpool_limits(2, user_api="blas"):
        for _ in range(3):
            assert ix.search("volcanic lava on the moon", budget=64).hits
        assert _blas_threads() == {2}
