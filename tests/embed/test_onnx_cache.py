"""The cached optimised ONNX graph gives bit-identical vectors and survives damage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpus import FACTS, TOPICS
from mograg.embed import onnx_cache
from mograg.embed.embedders import OnnxMiniLM

TEXTS = [*TOPICS.values(), *FACTS.values(), "", "x" * 400, "what buried Pompeii?"]


def _cached_dirs(root: Path) -> list[Path]:
    return [p for p in (root / "onnx").iterdir() if not p.name.startswith(".")]


@pytest.fixture(scope="module")
def plain_vectors() -> np.ndarray:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOGRAG_ONNX_CACHE", "off")
        return OnnxMiniLM().embed(TEXTS)


def test_cached_graph_gives_identical_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              plain_vectors: np.ndarray) -> None:
    monkeypatch.setenv("MOGRAG_CACHE", str(tmp_path))
    first = OnnxMiniLM().embed(TEXTS)  # optimises and saves
    [saved] = _cached_dirs(tmp_path)
    assert (saved / onnx_cache.GRAPH).is_file() and (saved / onnx_cache.WEIGHTS).is_file()
    again = OnnxMiniLM(threads=1, batch_size=3).embed(TEXTS)  # loads the saved graph
    assert np.array_equal(first, plain_vectors)
    assert np.array_equal(again, plain_vectors)


def test_damaged_cache_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   plain_vectors: np.ndarray) -> None:
    monkeypatch.setenv("MOGRAG_CACHE", str(tmp_path))
    OnnxMiniLM().embed(TEXTS[:1])
    [saved] = _cached_dirs(tmp_path)
    (saved / onnx_cache.GRAPH).write_bytes(b"not a model")
    assert np.array_equal(OnnxMiniLM().embed(TEXTS), plain_vectors)
    [again] = _cached_dirs(tmp_path)
    assert (again / onnx_cache.GRAPH).stat().st_size > 1000  # saved afresh


def test_unwritable_cache_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     plain_vectors: np.ndarray) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("MOGRAG_CACHE", str(blocker))
    assert np.array_equal(OnnxMiniLM().embed(TEXTS), plain_vectors)


def test_key_changes_with_the_runtime_version(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert onnx_cache.cache_dir(model, "1.0") != onnx_cache.cache_dir(model, "1.1")
