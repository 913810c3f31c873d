"""One BLAS thread while a search runs.

A search multiplies one query vector with a few thousand rows at a time. OpenBLAS splits
such products over every core, and the extra threads cost CPU without saving time: on two
cores they made ``Index.search`` on chroma-dev take 29 ms CPU instead of 17 ms for the
same 13 ms of wall time, and on a busy machine they cost wall time too. ``mograg serve``
pins BLAS to one thread for the whole process; this does the same around each search of
a library user's process and restores the user's setting afterwards.

Only searches on the main thread are limited: OpenBLAS takes its thread count from calls
made on the main thread (a limit set on another thread has no effect), and searches on the
main thread cannot overlap, so a limit is never restored while another search relies on
it. The first search of a process runs as it is: a one-shot ``mograg search`` would pay
more for importing threadpoolctl (~50 ms) than the threads cost it. The limit covers the
BLAS libraries loaded by the second search (numpy's, which a search uses); one a process
loads later (scipy's own OpenBLAS) keeps its setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["one_blas_thread"]

_state: dict[str, Any] = {"searches": 0, "controller": None}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with BLAS limited to one thread (main thread, second search on)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["searches"] += 1
    if _state["searches"] == 1:
        yield
        return
    if _state["controller"] is None:
        from threadpoolctl import ThreadpoolController

        _state["controller"] = ThreadpoolController()
    with _state["controller"].limit(limits=1, user_api="blas"):
        yield
