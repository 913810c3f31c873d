"""ONNX sessions that start fast: the graph optimised once, kept in the user's cache.

Creating an onnxruntime session with every graph optimisation costs ~0.2 s of CPU, most
of a cold ``mograg search``. onnxruntime can save the optimised graph; loaded again with
optimisations off, and its weights kept in a separate file that onnxruntime memory-maps,
the session starts in ~0.05 s and computes exactly the same numbers (the same kernels run
on the same graph; tests/embed/test_onnx_cache.py compares the vectors bit for bit).

The saved graph may depend on the onnxruntime version and on the CPU's instruction sets,
so its cache key includes both, besides the source model's path, size and time. It lives
in ``$MOGRAG_CACHE/onnx`` (default ``~/.cache/mograg/onnx``; ~90 MB for MiniLM, whose
int8 weights the optimiser turns into float32). ``MOGRAG_ONNX_CACHE=off`` turns the cache
off. Anything that goes wrong with it (read-only home, a damaged file) falls back to the
plain session.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("mograg.embed")

GRAPH = "model.onnx"
WEIGHTS = "weights.bin"


def cache_root() -> Path:
    """``$MOGRAG_CACHE`` or ``~/.cache/mograg``."""
    return Path(os.environ.get("MOGRAG_CACHE") or Path.home() / ".cache" / "mograg")


def enabled() -> bool:
    """False when ``MOGRAG_ONNX_CACHE`` is ``off``/``0``/``false``/``no``."""
    value = os.environ.get("MOGRAG_ONNX_CACHE", "").strip().lower()
    return value not in ("off", "0", "false", "no")


def _cpu_features() -> str:
    """The CPU's instruction-set flags (what optimised kernels may be chosen by)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8",
                                            errors="replace") as f:
        for line in f:
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    return platform.processor()


def cache_dir(model_path: Path, ort_version: str) -> Path:
    """Where the optimised copy of ``model_path`` is kept for this onnxruntime and CPU."""
    st = model_path.stat()
    key = "\n".join([str(model_path.resolve()), str(st.st_size), str(st.st_mtime_ns),
                     ort_version, platform.machine(), _cpu_features()])
    digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return cache_root() / "onnx" / f"{model_path.stem}-{digest}"


def create_session(model_path: Path, make_options: Callable[[], Any]) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model_path`` on the CPU.

    ``make_options()`` returns fresh ``SessionOptions`` (threads, logging); the graph
    optimisation level is set here. The first call optimises fully and saves the result
    in the cache; later calls load that copy with optimisations off.
    """
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]

    def plain() -> Any:
        opts = make_options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)

    if not enabled():
        return plain()
    try:
        target = cache_dir(model_path, ort.__version__)
    except OSError:
        return plain()
    if (target / GRAPH).is_file():
        opts = make_options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(target / GRAPH), sess_options=opts,
                                        providers=providers)
        except Exception as exc:  # damaged or foreign: drop it, optimise again below
            log.warning("ignoring the cached ONNX graph %s (%s)", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    return _create_and_save(model_path, target, make_options, plain)


def _create_and_save(model_path: Path, target: Path, make_options: Callable[[], Any],
                     plain: Callable[[], Any]) -> Any:
    """Optimise ``model_path`` into a temporary directory renamed to ``target`` when
    complete (concurrent processes each write their own; the first rename wins)."""
    import onnxruntime as ort

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError:
        return plain()
    try:
        opts = make_options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(tmp / GRAPH)
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", WEIGHTS)
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        try:
            sess = ort.InferenceSession(str(model_path), sess_options=opts,
                                        providers=["CPUExecutionProvider"])
        except Exception:  # saving failed (disk full?) or the model is bad: plain() tells
            return plain()
        if (tmp / GRAPH).is_file():
            with contextlib.suppress(OSError):
                tmp.rename(target)  # fails if another process got there first: fine
        return sess
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
