"""Issue 17 on the server: pathological JSON is a 400, documents are validated like the
CLI's, request types are strict, --private hides the API description, bugs are one log
line, and silent sockets from one address cannot starve other clients (real sockets)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

pytest.importorskip("fastapi")
import httpx
from fastapi.testclient import TestClient

from corpus import TOPICS
from mograg.index.core import Index
from mograg.server.app import IndexService, create_app, running_server
from mograg.server.conn_guard import DEFAULT_MAX_CONNECTIONS_PER_CLIENT
from mograg.types import Document

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> IndexService:
    root = tmp_path_factory.mktemp("harden") / "ix"
    Index.create(root).add([Document(k, v) for k, v in TOPICS.items()])
    return IndexService(root, reload_interval=0.0)


@pytest.fixture(scope="module")
def client(service: IndexService) -> TestClient:
    return TestClient(create_app(service, api_key=KEY))


@pytest.mark.parametrize("body", [
    b'[{"id": "x", "text": "t", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}]",
    b'[{"id": "x", "text": "t", "metadata": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}]",
    b'[{"id": "x", "text": "t", "metadata": {"n": ' + b"9" * 5000 + b"}}]",
    b'[{"id": "x", "text": "t", "metadata": {"n": NaN}}]',
    b'[{"id": "\\ud800", "text": "t"}]',
    b'[{"id": "x", "text": "a\\udfffb"}]',
    b"\xff\xfe not utf-8",
])
def test_pathological_json_is_400(client: TestClient, body: bytes) -> None:
    r = client.post("/documents", content=body, headers=AUTH)
    assert r.status_code in (400, 422), r.text
    assert isinstance(r.json()["error"], str)


@pytest.mark.parametrize("text", ["   \n\t ", "\u3000\n"])
def test_whitespace_only_document_is_refused_like_the_cli(client: TestClient, text: str) -> None:
    r = client.post("/documents", json=[{"id": "blank", "text": text}], headers=AUTH)
    assert r.status_code == 400 and "only whitespace" in r.json()["error"]
    assert client.get("/documents/blank").status_code == 404


@pytest.mark.parametrize("field", [{"budget": True}, {"budget": "5"}, {"budget": 5.0},
                                   {"level": True}, {"query": 7}])
def test_request_types_are_strict(client: TestClient, field: dict) -> None:
    r = client.post("/search", json={"query": "cats", **field})
    assert r.status_code == 422, r.text


def test_private_mode_hides_the_api_description(service: IndexService) -> None:
    c = TestClient(create_app(service, api_key=KEY, private=True))
    for path in ("/openapi.json", "/docs"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    paths = c.get("/openapi.json", headers={"X-API-Key": KEY}).json()["paths"]
    assert "/search" in paths
    assert c.get("/redoc").status_code == 404
    open_app = TestClient(create_app(service, api_key=KEY))
    assert open_app.get("/openapi.json").status_code == 200


def test_a_bug_is_a_500_and_one_log_line(service: IndexService, caplog, monkeypatch) -> None:
    def bug(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    app = create_app(service, api_key=KEY)
    monkeypatch.setattr(Index, "search", bug)  # stands for any bug below the routes
    monkeypatch.delenv("MOGRAG_DEBUG", raising=False)
    with caplog.at_level(logging.ERROR, logger="mograg.server"), running_server(app) as url:
        r = httpx.post(f"{url}/search", json={"query": "cats"})
    assert r.status_code == 500 and r.json() == {"error": "internal server error; see the "
                                                          "server log"}
    lines = [rec for rec in caplog.records if rec.name == "mograg.server"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "ZeroDivisionError: boom" in lines[0].getMessage()


def test_silent_sockets_from_one_address_do_not_starve_others(service: IndexService) -> None:
    """Many more silent connections than the per-address cap, from 127.0.0.2; searches
    from 127.0.0.1 meanwhile all succeed, and the extra silent ones are refused."""
    n_silent = DEFAULT_MAX_CONNECTIONS_PER_CLIENT + 40
    with running_server(create_app(service)) as url:
        port = int(url.rsplit(":", 1)[1])
        silent = []
        try:
            for _ in range(n_silent):
                s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=("127.0.0.2", 0))
                silent.append(s)
            time.sleep(0.2)
            with httpx.Client(base_url=url) as http:
                for q in ("why do cats purr", "what buried Pompeii") * 5:
                    r = http.post("/search", json={"query": q, "budget": 64})
                    assert r.status_code == 200, r.text
            refused = 0
            for s in silent:
                s.settimeout(0.05)
                try:
                    data = s.recv(200)
                except (TimeoutError, OSError):
                    continue  # still open: within the cap
                refused += data.startswith(b"HTTP/1.1 503")
            assert refused == n_silent - DEFAULT_MAX_CONNECTIONS_PER_CLIENT
        finally:
            for s in silent:
                s.close()
