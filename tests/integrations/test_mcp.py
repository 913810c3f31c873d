"""`mograg mcp`: the official MCP SDK's client drives the server over stdio (a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="needs pip install 'mograg[mcp]'")

from mcp import Client, StdioServerParameters

import mograg
from corpus import FACTS, TOPICS
from mograg.embed.embedders import Embedder
from mograg.index.core import Index
from mograg.types import Document


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, shared_embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("mcp") / "ix"
    ix = Index.create(root, levels="32,64")
    ix.add([Document(k, v, {"title": k.title()}) for k, v in {**TOPICS, **FACTS}.items()])
    return root


def _server(index_dir: Path) -> StdioServerParameters:
    src = str(Path(mograg.__file__).resolve().parents[1])  # this checkout's mograg
    env = {"PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "mograg.cli", "mcp", "--index", str(index_dir)],
                                 env=env)


async def _session(index_dir: Path) -> dict[str, Any]:
    """One stdio session: every tool and resource once (a subprocess start costs seconds)."""
    got: dict[str, Any] = {}
    async with Client(_server(index_dir)) as client:
        got["tools"] = {t.name: t for t in (await client.list_tools()).tools}
        got["search"] = await client.call_tool(
            "search", {"query": "what buried Pompeii", "budget": 64})
        got["ask"] = await client.call_tool("ask", {"question": "who walked on the Moon first"})
        got["list"] = await client.call_tool("list_documents", {"limit": 3})
        got["get"] = await client.call_tool("get_document",
                                            {"doc_id": "moon", "start": 0, "end": 8})
        got["missing"] = await client.call_tool("get_document", {"doc_id": "nope"})
        got["bad_mode"] = await client.call_tool("search", {"query": "x", "mode": "fuzzy"})
        got["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
        got["info"] = await client.read_resource("mograg://index")
        got["doc"] = await client.read_resource("mograg://documents/chess")
    return got


@pytest.fixture(scope="module")
def session(index_dir: Path) -> dict[str, Any]:
    return asyncio.run(_session(index_dir))


def test_tools_have_typed_schemas(session: dict[str, Any]) -> None:
    tools = session["tools"]
    assert set(tools) == {"search", "ask", "list_documents", "get_document"}
    search = tools["search"]
    props = search.input_schema["properties"]
    assert search.input_schema["required"] == ["query"]
    assert props["budget"]["type"] == "integer" and props["budget"]["minimum"] == 1
    assert props["mode"]["enum"] == ["hybrid", "dense", "bm25"]
    out = search.output_schema
    assert {"query", "budget", "n_tokens", "hits", "routing"} <= set(out["properties"])
    assert tools["get_document"].output_schema["required"] == [
        "id", "start", "end", "length", "text", "metadata"]
    assert all(t.annotations.read_only_hint for t in tools.values())


def test_search_returns_exact_spans(session: dict[str, Any], index_dir: Path) -> None:
    res = session["search"]
    assert not res.is_error
    body = res.structured_content
    hit = body["hits"][0]
    assert hit["doc_id"] == "volcano" and hit["title"] == "Volcano"
    assert hit["text"] == TOPICS["volcano"][hit["start"]:hit["end"]]
    assert body["n_tokens"] <= 64 and body["routing"]["router"] == "entropy"
    # the same answer as the library gives
    lib = Index.open(index_dir).search("what buried Pompeii", budget=64)
    assert [(h["doc_id"], h["start"], h["end"]) for h in body["hits"]] == [
        (h.doc_id, h.start, h.end) for h in lib.hits]


def test_ask_list_and_get(session: dict[str, Any]) -> None:
    ask = session["ask"].structured_content
    assert "Armstrong" in ask["answer"] and ask["generator"] == "extractive"
    assert ask["citations"][0]["doc_id"] == "moon"
    listed = session["list"].structured_content
    assert listed["total"] == len(TOPICS) + len(FACTS) and len(listed["documents"]) == 3
    got = session["get"].structured_content
    assert got["text"] == FACTS["moon"][:8] and got["length"] == len(FACTS["moon"])


def test_errors_are_one_line_tool_errors(session: dict[str, Any]) -> None:
    missing = session["missing"]
    assert missing.is_error and "no document 'nope'" in missing.content[0].text
    assert "Traceback" not in missing.content[0].text
    assert session["bad_mode"].is_error


def test_index_and_documents_are_resources(session: dict[str, Any]) -> None:
    assert "mograg://index" in session["resources"]
    assert '"documents": 7' in session["info"].contents[0].text
    assert session["doc"].contents[0].text == TOPICS["chess"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_streamable_http_on_loopback(index_dir: Path) -> None:
    import subprocess
    import time

    port = _free_port()
    params = _server(index_dir)
    proc = subprocess.Popen(
        [params.command, *params.args, "--transport", "http", "--port", str(port)],
        env={**os.environ, **(params.env or {})}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)

    async def call() -> Any:
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            return await client.call_tool("search", {"query": "which chess piece is strongest"})

    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the server accepts connections
            try:
                result = asyncio.run(call())
                break
            except Exception as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"server did not answer: {err}") from exc
                time.sleep(0.3)
        assert result.structured_content["hits"][0]["doc_id"] == "chess"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
