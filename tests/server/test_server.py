"""HTTP API tests (`mograg serve`): auth, limits, validation, round trips, concurrency."""

from __future__ import annotations

import json
import socket
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from corpus import field_notes

pytest.importorskip("fastapi", reason="the server needs the 'serve' extra (fastapi)")
if not (find_spec("python_multipart") or find_spec("multipart")):
    pytest.skip("the server needs the 'serve' extra (python-multipart)", allow_module_level=True)
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from mograg.errors import MogragError  # noqa: E402
from mograg.index.core import Index  # noqa: E402
from mograg.server.app import IndexService, create_app, resolve_api_key, running_server  # noqa: E402
from mograg.types import Document  # noqa: E402

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY = "What does the heron eat in winter?"

@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "ix"
    ix = Index.create(root)
    ix.add([Document(f"doc-{i}", field_notes(i, 24), {"title": f"Field notes {i}"})
            for i in range(6)])
    return root


@pytest.fixture(scope="module")
def service(index_dir: Path) -> IndexService:
    return IndexService(index_dir, reload_interval=0.0)


@pytest.fixture(scope="module")
def client(service: IndexService) -> TestClient:
    return TestClient(create_app(service, api_key=KEY))


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


# --------------------------------------------------------------------------- reads


def test_health_info_page_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/info").json()
    assert info["documents"] >= 6 and info["levels"] == [32, 64, 128, 256, 512]
    assert "path" not in info  # the server's filesystem layout is not disclosed
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="q"' in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/../server.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/documents", "/info", "/health", "/api/inspect"} <= set(paths)


def test_search_where_filters_documents(client: TestClient) -> None:
    resp = client.post("/search", json={"query": QUERY, "budget": 128,
                                        "where": ["title=Field notes 3"]})
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]
    assert hits and {h["doc_id"] for h in hits} == {"doc-3"}
    assert "KEY=VALUE" in _error(client.post("/search", json={"query": QUERY,
                                                              "where": ["nonsense"]}), 400)


def test_search_is_the_cli_json(client: TestClient, index_dir: Path) -> None:
    resp = client.post("/search", json={"query": QUERY, "budget": 128})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert set(data) >= {"query", "budget", "n_tokens", "hits", "routing"}
    assert data["hits"] and data["n_tokens"] <= 128
    weights = data["routing"]["weights"]
    assert set(weights) == {f"level:{s}" for s in (32, 64, 128, 256, 512)}
    assert abs(sum(weights.values()) - 1) < 1e-3
    assert data == Index.open(index_dir).search(QUERY, budget=128).to_dict()
    one = client.post("/search", json={"query": QUERY, "level": 64, "mode": "bm25"}).json()
    assert {h["level"] for h in one["hits"]} <= {32, 64}


def test_fixed_level_search_reports_the_granularity_name(client: TestClient) -> None:
    """A fixed-level search names its granularity in ``chosen`` (as routed searches do)."""
    res = client.post("/search", json={"query": QUERY, "level": 64, "budget": 64}).json()
    assert res["routing"] == {"router": "level:64", "chosen": ["level:64"]}
    page = client.get("/api/inspect", params={"query": QUERY, "router": "level:64"}).json()
    assert page["routing"]["chosen"] == ["level:64"]
    assert [lv["size"] for lv in page["levels"] if lv["chosen"]] == [64]


def test_inspect_gives_weights_levels_and_final(client: TestClient) -> None:
    resp = client.get("/api/inspect", params={"query": QUERY, "top": 3, "budget": 96})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert [lv["size"] for lv in data["levels"]] == [32, 64, 128, 256, 512]
    assert all(1 <= len(lv["hits"]) <= 3 for lv in data["levels"])
    hit = data["levels"][0]["hits"][0]
    assert set(hit) >= {"doc_id", "start", "end", "score", "preview"}
    doc = client.get(f"/documents/{hit['doc_id']}").json()
    assert doc["text"][hit["start"]:hit["end"]].startswith(hit["preview"].rstrip("…"))
    assert sum(w["weight"] for w in data["weights"]) == pytest.approx(1, abs=1e-3)
    assert any(lv["chosen"] for lv in data["levels"])
    assert data["result"]["n_tokens"] <= 96
    post = client.post("/api/inspect", json={"query": QUERY, "top": 3, "budget": 96}).json()
    assert post["result"] == data["result"]
    assert client.get("/api/inspect", params={"query": QUERY, "top": 99}).status_code == 422


# --------------------------------------------------------------------------- auth


def test_writes_need_the_key(client: TestClient) -> None:
    doc = [{"id": "intruder", "text": "Nobody should be able to add this."}]
    resp = client.post("/documents", json=doc)
    assert "API key" in _error(resp, 401)
    assert resp.headers["www-authenticate"] == "Bearer"
    _error(client.post("/documents", json=doc, headers={"X-API-Key": "wrong-key-123"}), 403)
    _error(client.post("/documents", json=doc, headers={"Authorization": "Bearer nope"}), 403)
    _error(client.delete("/documents/doc-0"), 401)
    _error(client.delete("/documents/doc-0", headers={"X-API-Key": KEY + "x"}), 403)
    assert client.get("/documents/doc-0").status_code == 200  # still there
    assert client.get("/documents/intruder").status_code == 404


def test_server_without_key_is_read_only(service: IndexService) -> None:
    c = TestClient(create_app(service))
    assert "read-only" in _error(c.post("/documents", json=[{"id": "a", "text": "b"}],
                                        headers=AUTH), 403)
    assert c.post("/search", json={"query": QUERY}).status_code == 200


def test_private_server_needs_the_key_for_reads(service: IndexService) -> None:
    c = TestClient(create_app(service, api_key=KEY, private=True))
    _error(c.post("/search", json={"query": QUERY}), 401)
    _error(c.get("/info", headers={"X-API-Key": "not-the-key"}), 403)
    _error(c.get("/documents/doc-0"), 401)
    _error(c.get("/api/inspect", params={"query": QUERY}), 401)
    assert c.post("/search", json={"query": QUERY}, headers=AUTH).status_code == 200
    assert c.get("/info", headers={"X-API-Key": KEY}).status_code == 200
    assert c.get("/health").status_code == 200  # liveness stays open
    assert c.get("/").status_code == 200  # the page holds no data
    with pytest.raises(MogragError, match="API key"):
        create_app(service, private=True)


def test_api_key_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOGRAG_API_KEY", raising=False)
    assert resolve_api_key() is None
    monkeypatch.setenv("MOGRAG_API_KEY", "from-the-environment")
    assert resolve_api_key() == "from-the-environment"
    f = tmp_path / "key"
    f.write_text("from-the-file-1234\n")
    assert resolve_api_key(api_key_file=f) == "from-the-file-1234"
    f.write_text("  \n")
    with pytest.raises(MogragError, match="empty"):
        resolve_api_key(api_key_file=f)
    with pytest.raises(MogragError, match="cannot read"):
        resolve_api_key(api_key_file=tmp_path / "missing")
    with pytest.raises(MogragError, match="too short"):
        resolve_api_key("abc")


# --------------------------------------------------------------------------- limits and errors


def test_body_limit_gives_413(service: IndexService) -> None:
    c = TestClient(create_app(service, api_key=KEY, max_body_bytes=2048))
    big = json.dumps({"query": "x" * 5000})
    resp = c.post("/search", content=big, headers={"Content-Type": "application/json"})
    assert "too large" in _error(resp, 413)

    def chunks():  # no Content-Length: the bytes are counted as they arrive
        for _ in range(10):
            yield b" " * 1000

    resp = c.post("/search", content=chunks(), headers={"Content-Type": "application/json"})
    _error(resp, 413)
    docs = [{"id": f"big-{i}", "text": "word " * 200} for i in range(5)]
    _error(c.post("/documents", json=docs, headers=AUTH), 413)
    files = {"files": ("big.txt", b"word " * 1000, "text/plain")}
    _error(c.post("/documents", files=files, headers=AUTH), 413)
    assert c.get("/documents/big-0").status_code == 404
    assert c.post("/search", json={"query": QUERY}).status_code == 200


def test_validation_errors(client: TestClient) -> None:
    for body in ({}, {"query": ""}, {"query": QUERY, "budget": 0},
                 {"query": QUERY, "budget": 10**6}, {"query": QUERY, "mode": "magic"},
                 {"query": QUERY, "strategy": "all"}, {"query": QUERY, "colour": "red"},
                 {"query": "x" * 5000}, {"query": ["a"]}):
        err = _error(client.post("/search", json=body), 422)
        assert err.startswith("invalid")
    assert "budget" in _error(client.post("/search", json={"query": "q", "budget": 10**6}), 422)
    _error(client.post("/documents", json=[{"id": "a"}], headers=AUTH), 422)
    _error(client.post("/documents", json=[{"id": "", "text": "t"}], headers=AUTH), 422)
    _error(client.post("/documents", json="text", headers=AUTH), 422)
    _error(client.post("/documents", json=[], headers=AUTH), 400)
    dup = [{"id": "a", "text": "one"}, {"id": "a", "text": "two"}]
    assert "duplicate" in _error(client.post("/documents", json=dup, headers=AUTH), 400)
    json_type = {**AUTH, "Content-Type": "application/json"}
    bad_json = client.post("/documents", content=b"[{", headers=json_type)
    assert "JSON" in _error(bad_json, 400)
    _error(client.post("/documents", content=b"hi", headers={**AUTH,
                                                             "Content-Type": "text/plain"}), 415)
    assert "no level 7" in _error(client.post("/search", json={"query": "q", "level": 7}), 400)
    assert "no router" in _error(client.post("/search", json={"query": "q", "router": "x"}), 400)
    _error(client.get("/no/such/endpoint"), 404)
    _error(client.put("/search", json={"query": "q"}), 405)


def test_unknown_documents_are_404(client: TestClient) -> None:
    assert "no document" in _error(client.get("/documents/no-such-doc"), 404)
    _error(client.get("/documents/..%2F..%2Fetc%2Fpasswd"), 404)
    _error(client.delete("/documents/no-such-doc", headers=AUTH), 404)


# --------------------------------------------------------------------------- writes


def test_add_search_delete_round_trip(client: TestClient) -> None:
    gen0 = client.get("/health").json()["generation"]
    text = ("The quokka of Rottnest Island grazes on saltbush at dusk. "
            "Quokkas rest in thickets during the hottest hours.")
    docs = [{"id": "notes/quokka.md", "text": text, "metadata": {"title": "Quokka"}}]
    resp = client.post("/documents", json=docs, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["added"] == 1 and body["ids"] == ["notes/quokka.md"]
    assert body["generation"] == gen0 + 1
    got = client.get("/documents/notes/quokka.md").json()
    assert got == {"id": "notes/quokka.md", "text": text, "metadata": {"title": "Quokka"}}
    hits = client.post("/search", json={"query": "What do quokkas eat?"}).json()["hits"]
    assert hits[0]["doc_id"] == "notes/quokka.md"
    # replacing keeps one copy
    resp = client.post("/documents", json=docs, headers=AUTH)
    assert resp.json()["replaced"] == 1
    resp = client.delete("/documents/notes/quokka.md", headers=AUTH)
    assert resp.status_code == 200 and resp.json()["deleted"] == "notes/quokka.md"
    assert client.get("/documents/notes/quokka.md").status_code == 404
    hits = client.post("/search", json={"query": "What do quokkas eat?"}).json()["hits"]
    assert all(h["doc_id"] != "notes/quokka.md" for h in hits)
    assert client.get("/health").json()["generation"] == gen0 + 3


def test_file_upload(client: TestClient) -> None:
    md = b"# Kea notes\n\nThe kea is a parrot of the Southern Alps. It eats roots and insects.\n"
    jsonl = (b'{"id": "rec-1", "text": "The takahe eats tussock grass."}\n'
             b'{"text": "The kakapo is a flightless nocturnal parrot."}\n')
    files = [("files", ("kea.md", md, "text/markdown")),
             ("files", ("birds.jsonl", jsonl, "application/jsonl"))]
    resp = client.post("/documents", files=files, headers=AUTH)
    assert resp.status_code == 200, resp.text
    ids = resp.json()["ids"]
    assert ids == ["kea.md", "rec-1", "birds.jsonl#2"]
    kea = client.get("/documents/kea.md").json()
    assert kea["metadata"]["title"] == "Kea notes" and kea["metadata"]["source"] == "kea.md"
    assert "/tmp" not in json.dumps(client.get("/documents/birds.jsonl#2".replace("#", "%23"))
                                    .json())
    for i in ids:
        assert client.delete(f"/documents/{i.replace('#', '%23')}", headers=AUTH).status_code == 200
    # bad uploads add nothing and say why
    bad = [("files", ("ok.txt", b"Fine text here.", "text/plain")),
           ("files", ("bad.jsonl", b'{"id": "x"}\n', "application/jsonl"))]
    err = _error(client.post("/documents", files=bad, headers=AUTH), 400)
    assert "bad.jsonl:1" in err and "nothing was added" in err and "/tmp" not in err
    assert client.get("/documents/ok.txt").status_code == 404
    for name in ("../../evil.txt", "payload.exe", ".hidden.md"):
        files = {"files": (name, b"text", "text/plain")}
        resp = client.post("/documents", files=files, headers=AUTH)
        if name.startswith("../"):  # reduced to its base name, never a path
            assert resp.status_code == 200 and resp.json()["ids"] == ["evil.txt"]
            client.delete("/documents/evil.txt", headers=AUTH)
        else:
            _error(resp, 400)


def test_extension_hook(service: IndexService) -> None:
    from fastapi import Depends

    def add_ping(app, ctx) -> None:
        @app.get("/ping", dependencies=[Depends(ctx.require_read)])
        def ping() -> dict:
            return {"documents": ctx.service.handle().index.snapshot.n_docs}

    c = TestClient(create_app(service, api_key=KEY, private=True, extensions=[add_ping]))
    assert c.get("/ping").status_code == 401
    assert c.get("/ping", headers=AUTH).json()["documents"] >= 6


# --------------------------------------------------------------------------- concurrency


def test_concurrent_reads_during_writes_see_whole_generations(service: IndexService) -> None:
    """Readers never fail and always see one committed generation, old or new."""
    app = create_app(service, api_key=KEY)
    unique = "The pangolin of the savanna eats termites and ants at night."
    question = {"query": "What does the pangolin eat?", "budget": 64}
    results: list[tuple[str, int, int, bool]] = []
    stop = threading.Event()

    with running_server(app) as url:
        gen0 = httpx.get(f"{url}/health").json()["generation"]

        def reader() -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop.is_set():
                    r = c.post("/search", json=question)
                    gen = int(r.headers.get("x-mograg-generation", -1))
                    found = r.status_code == 200 and any(
                        h["doc_id"] == "pangolin" for h in r.json()["hits"])
                    results.append(("search", r.status_code, gen, found))
                    i = c.get("/info")
                    results.append(("info", i.status_code, i.json().get("generation", -1), False))

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            with httpx.Client(base_url=url, timeout=120, headers=AUTH) as w:
                add = w.post("/documents", json=[{"id": "pangolin", "text": unique}])
                assert add.status_code == 200, add.text
                time.sleep(0.3)
                assert w.delete("/documents/pangolin").status_code == 200
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)

        # a client that disconnects mid-body does not hurt the server
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{\"query\": ")
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.post(f"{url}/search", json=question).status_code == 200

    assert results and all(code == 200 for _, code, _, _ in results), results[:5]
    gens = {g for _, _, g, _ in results}
    assert gens <= {gen0, gen0 + 1, gen0 + 2} and len(gens) >= 2, gens
    # the new document is visible exactly in the generation that added it
    for kind, _, gen, found in results:
        if kind == "search":
            assert found == (gen == gen0 + 1), (gen, found)


def test_missing_extra_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from mograg.errors import MissingExtraError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"mograg\[serve\]"):
        create_app(tmp_path)
