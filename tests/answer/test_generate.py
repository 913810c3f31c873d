"""Answers with citations: extractive generator, prompt fitting, the OpenAI-compatible client
against a real local HTTP server (streaming, timeouts, retries), config precedence, answer
scores, and ``POST /ask``."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from corpus import TOPICS
from mograg.answer.citations import cited_numbers, says_not_found
from mograg.answer.extractive import EXTRACTIVE_NOTE, ExtractiveGenerator
from mograg.answer.generate import Generator, answer, make_generator
from mograg.answer.openai import OpenAIGenerator, chat_url
from mograg.answer.prompt import Source, build_messages, estimate_tokens, fit_sources
from mograg.answer.squad import answer_for_scoring, answer_scores
from mograg.config import GeneratorSettings, load_config, resolve_generator_settings
from mograg.errors import MissingExtraError, MogragError
from mograg.eval.answers import evaluate_answers
from mograg.eval.questions import Question
from mograg.index.core import Index
from mograg.types import Document

DOCS = TOPICS
TITLES = {"cats": "Cats", "volcano": "Volcanoes", "bread": "Baking bread", "chess": "Chess"}


@pytest.fixture(autouse=True)
def _no_pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check prompts and citations over a full budget of sources: no relevance
    floor or folding (tests/retrieval/test_prune.py checks those)."""
    from mograg.retrieval import prune

    monkeypatch.setattr(prune, "FLOOR", -1.0)
    monkeypatch.setattr(prune, "DUPLICATE_SHARE", 2.0)


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory) -> Index:
    index = Index.create(tmp_path_factory.mktemp("gen") / "ix", levels=[8, 16, 32])
    index.add([Document(k, v, {"title": TITLES[k]}) for k, v in DOCS.items()])
    return index


def assert_exact_spans(index: Index, result: dict[str, Any]) -> None:
    snap = index.snapshot
    for c in result["citations"]:
        assert set(c) == {"n", "doc_id", "start", "end", "text"}
        text = snap.text(snap.doc_index[c["doc_id"]])
        assert 0 <= c["start"] < c["end"] <= len(text)
        assert text[c["start"] : c["end"]] == c["text"]


def assert_contract(result: dict[str, Any]) -> None:
    assert set(result) == {"question", "answer", "citations", "routing", "generator", "usage"}
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(result["usage"])
    json.dumps(result)  # JSON-ready


# --------------------------------------------------------------------------- extractive


def test_extractive_answer_quotes_cited_sentences(ix: Index) -> None:
    streamed: list[str] = []
    r = answer(ix, "What buried Pompeii?", ExtractiveGenerator(), budget=64,
               stream_to=streamed.append)
    assert_contract(r)
    assert r["generator"] == "extractive"
    assert r["answer"].startswith(EXTRACTIVE_NOTE)
    assert "no language model" in r["answer"]
    assert "Vesuvius buried Pompeii in the year 79. [1]" in r["answer"]
    assert r["citations"][0]["doc_id"] == "volcano"
    assert r["citations"][0]["text"] == "Vesuvius buried Pompeii in the year 79."
    assert [c["n"] for c in r["citations"]] == list(range(1, len(r["citations"]) + 1))
    assert_exact_spans(ix, r)
    assert "".join(streamed) == r["answer"]
    assert r["routing"]["chosen"]


def test_extractive_not_found_when_nothing_relevant(ix: Index) -> None:
    r = answer(ix, "What is the boiling point of mercury?", ExtractiveGenerator(), budget=64)
    assert_contract(r)
    assert says_not_found(r["answer"])
    assert "extractive" in r["answer"]
    assert r["citations"] == []


def test_extractive_generate_parses_prompt() -> None:
    text = DOCS["chess"]
    src = Source(1, "chess", 0, len(text), text, "Chess", 8, 1.0, 30)
    g = ExtractiveGenerator()
    assert isinstance(g, Generator)
    out = g.generate(build_messages("Which piece is the most powerful?", [src]))
    assert "The queen is the most powerful piece. [1]" in out


# --------------------------------------------------------------------------- prompting


class FakeGenerator:
    """Records prompts; answers with a fixed reply (tests citation handling)."""

    def __init__(self, reply: str, context_tokens: int = 4096, max_tokens: int = 64) -> None:
        self.name = "fake"
        self.reply = reply
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.prompts: list[list[dict[str, str]]] = []

    def generate(self, prompt_messages, stream=False, usage=None):
        self.prompts.append(prompt_messages)
        if stream:
            return iter(self.reply.split(" ")[:1] + [" " + w for w in self.reply.split(" ")[1:]])
        return self.reply


def test_prompt_has_numbered_sources_and_instructions(ix: Index) -> None:
    g = FakeGenerator("Vesuvius [1].")
    answer(ix, "What buried Pompeii?", g, budget=64)
    system, user = g.prompts[0]
    assert system["role"] == "system" and "[1]" in system["content"]
    assert "not found in the sources" in system["content"]
    assert "[1] Volcanoes — volcano (" in user["content"]
    assert user["content"].rstrip().endswith("say: not found in the sources.")
    assert "Question: What buried Pompeii?" in user["content"]


def test_citations_follow_the_answer(ix: Index) -> None:
    r = answer(ix, "What buried Pompeii?", FakeGenerator("Vesuvius did [2], see [9]."),
               budget=128)
    assert [c["n"] for c in r["citations"]] == [2]
    assert r["usage"]["invalid_citations"] == [9]
    assert_exact_spans(ix, r)
    r = answer(ix, "What buried Pompeii?", FakeGenerator("Vesuvius."), budget=128)
    assert len(r["citations"]) == r["usage"]["sources_used"] > 1  # cites none: all shown
    assert_exact_spans(ix, r)
    r = answer(ix, "Who won?", FakeGenerator("Not found in the sources."), budget=64)
    assert r["citations"] == []
    assert cited_numbers("a [1, 3] b [2][3]") == [1, 3, 2]


def test_prompt_trimmed_to_small_context(ix: Index) -> None:
    question = "How does bread dough rise?"
    big = FakeGenerator("The yeast [1].", context_tokens=4096)
    full = answer(ix, question, big, budget=200)
    assert full["usage"]["sources_dropped"] == 0
    n_all = full["usage"]["sources_used"]
    assert n_all >= 3
    # a window with room for about half of the sources
    empty = estimate_tokens(build_messages(question, []))
    window = 40 + empty + (estimate_tokens(big.prompts[0]) - empty) // 2
    small = FakeGenerator("The yeast [1].", context_tokens=window, max_tokens=40)
    r = answer(ix, question, small, budget=200)
    assert r["usage"]["sources_dropped"] >= 1 and r["usage"]["sources_used"] >= 1
    assert r["usage"]["sources_used"] + r["usage"]["sources_dropped"] == n_all
    assert estimate_tokens(small.prompts[0]) <= window - 40
    # the best-ranked sources are kept, in order
    kept_big = [ln for ln in big.prompts[0][1]["content"].split("\n") if ln.startswith("[")]
    kept_small = [ln for ln in small.prompts[0][1]["content"].split("\n") if ln.startswith("[")]
    assert kept_small == kept_big[: len(kept_small)]
    assert_exact_spans(ix, r)


def test_single_source_shortened_to_fit(ix: Index) -> None:
    text = " ".join(DOCS.values())
    src = Source(1, "all", 0, len(text), text, "", 32, 1.0, 120)
    g = FakeGenerator("x", context_tokens=260, max_tokens=16)
    kept, dropped = fit_sources("What buried Pompeii?", [src], g)
    assert dropped == 0 and len(kept) == 1
    assert text.startswith(kept[0].text) and kept[0].end == len(kept[0].text)
    assert kept[0].text.endswith(".") and len(kept[0].text) < len(text)
    assert estimate_tokens(build_messages("What buried Pompeii?", kept)) <= 260 - 16
    with pytest.raises(MogragError, match="context"):
        fit_sources("What buried Pompeii?", [src], FakeGenerator("x", context_tokens=40))


def test_empty_question_is_an_error(ix: Index) -> None:
    with pytest.raises(MogragError, match="empty"):
        answer(ix, "  ", ExtractiveGenerator())


# --------------------------------------------------------------------------- a real local server


class Handler(BaseHTTPRequestHandler):
    """A small OpenAI-compatible endpoint; the path prefix picks a behaviour."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        mode = self.path.strip("/").split("/")[0]
        state = self.server.state
        state["calls"][mode] = state["calls"].get(mode, 0) + 1
        state["requests"].append({"path": self.path, "body": body,
                                  "auth": self.headers.get("Authorization")})
        if not self.path.endswith("/v1/chat/completions"):
            self._json(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        if mode == "slow":
            time.sleep(2.0)
        if mode == "flaky" and state["calls"][mode] == 1:
            self._json(500, {"error": {"message": "model crashed"}})
            return
        if mode == "limited" and state["calls"][mode] == 1:
            self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
            return
        if mode == "broken":
            self._json(503, {"error": {"message": "overloaded"}})
            return
        if mode == "auth":
            self._json(401, {"error": {"message": "invalid api key"}})
            return
        reply = "Vesuvius buried Pompeii in the year 79 [1]."
        user = body["messages"][-1]["content"]
        if "Pompeii" not in user.split("Question:")[0] or "mercury" in user:
            reply = "not found in the sources"
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            words = reply.split(" ")
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        self._json(200, {
            "id": "x", "object": "chat.completion", "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 123, "completion_tokens": 11, "total_tokens": 134},
        })


@pytest.fixture(scope="module")
def llm_server() -> Iterator[tuple[str, dict[str, Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = {"calls": {}, "requests": []}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}", server.state
    server.shutdown()
    server.server_close()


def test_openai_non_streaming(ix: Index, llm_server) -> None:
    url, state = llm_server
    g = OpenAIGenerator(f"{url}/ok/v1", model="tiny", api_key="sk-test", retries=0)
    r = answer(ix, "What buried Pompeii?", g, budget=64)
    assert_contract(r)
    assert r["answer"] == "Vesuvius buried Pompeii in the year 79 [1]."
    assert r["generator"] == "openai:tiny"
    assert [c["n"] for c in r["citations"]] == [1]
    assert r["usage"]["prompt_tokens"] == 123 and r["usage"]["completion_tokens"] == 11
    assert_exact_spans(ix, r)
    req = state["requests"][-1]
    assert req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "tiny" and req["body"]["stream"] is False
    assert req["body"]["messages"][0]["role"] == "system"


def test_openai_streaming(ix: Index, llm_server) -> None:
    url, _ = llm_server
    g = OpenAIGenerator(f"{url}/ok/v1", model="tiny", retries=0)
    pieces: list[str] = []
    r = answer(ix, "What buried Pompeii?", g, budget=64, stream_to=pieces.append)
    assert len(pieces) > 3
    assert "".join(pieces) == r["answer"] == "Vesuvius buried Pompeii in the year 79 [1]."
    assert r["usage"]["completion_tokens"] == len(pieces) and r["usage"]["estimated"]
    assert_exact_spans(ix, r)


def test_openai_not_found(ix: Index, llm_server) -> None:
    url, _ = llm_server
    g = OpenAIGenerator(f"{url}/ok/v1", retries=0)
    r = answer(ix, "What is the boiling point of mercury?", g, budget=32)
    assert r["answer"] == "not found in the sources" and r["citations"] == []


def test_timeout_is_one_line_error(llm_server) -> None:
    url, _ = llm_server
    g = OpenAIGenerator(f"{url}/slow/v1", timeout=0.3, retries=1, backoff=0.05)
    t = time.perf_counter()
    with pytest.raises(MogragError) as e:
        g.generate([{"role": "user", "content": "hi"}])
    msg = str(e.value)
    assert "\n" not in msg and f"{url}/slow/v1/chat/completions" in msg
    assert "timed out after 0.3 s (2 attempt(s))" in msg
    assert time.perf_counter() - t < 1.8


def test_retry_after_500_succeeds(llm_server) -> None:
    url, state = llm_server
    g = OpenAIGenerator(f"{url}/flaky/v1", retries=2, backoff=0.05)
    prompt = [{"role": "user", "content": "Pompeii\n\nQuestion: q"}]
    assert g.generate(prompt).startswith("Vesuvius")
    assert state["calls"]["flaky"] == 2
    # streaming retries too (before the first piece)
    state["calls"]["flaky"] = 0
    text = "".join(g.generate([{"role": "user", "content": "Pompeii\n\nQuestion: q"}],
                              stream=True))
    assert text.startswith("Vesuvius") and state["calls"]["flaky"] == 2


def test_429_honours_retry_after(llm_server) -> None:
    url, state = llm_server
    g = OpenAIGenerator(f"{url}/limited/v1", retries=1, backoff=0.01)
    t = time.perf_counter()
    assert g.generate([{"role": "user", "content": "x"}]) == "not found in the sources"
    assert time.perf_counter() - t >= 0.9  # waited Retry-After: 1, not the 0.01 s backoff
    assert state["calls"]["limited"] == 2


def test_http_errors_are_one_line(llm_server) -> None:
    url, state = llm_server
    g = OpenAIGenerator(f"{url}/broken/v1", retries=2, backoff=0.01)
    with pytest.raises(MogragError, match=r"HTTP 503: overloaded \(3 attempt\(s\)\)") as e:
        g.generate([{"role": "user", "content": "x"}])
    assert "\n" not in str(e.value) and f"{url}/broken/v1/chat/completions" in str(e.value)
    g = OpenAIGenerator(f"{url}/auth/v1", retries=3, backoff=0.01)
    with pytest.raises(MogragError, match=r"HTTP 401: invalid api key .*API key"):
        g.generate([{"role": "user", "content": "x"}])
    assert state["calls"]["auth"] == 1  # 401 is not retried
    g = OpenAIGenerator(f"{url}/ok", retries=0)
    with pytest.raises(MogragError, match=r"HTTP 404.*base URL"):
        g.generate([{"role": "user", "content": "x"}])


def test_connection_refused_is_one_line() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01)
    with pytest.raises(MogragError, match=r"cannot connect .*is the server running") as e:
        g.generate([{"role": "user", "content": "x"}])
    assert "\n" not in str(e.value) and f"127.0.0.1:{port}" in str(e.value)


def test_chat_url() -> None:
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("https://x.org/api/v2") == "https://x.org/api/v2/chat/completions"


def test_missing_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingExtraError, match=r"mograg\[openai\]"):
        OpenAIGenerator("http://127.0.0.1:1/v1")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(MissingExtraError, match=r"mograg\[local\]"):
        make_generator(GeneratorSettings(kind="local"))


# --------------------------------------------------------------------------- config


def write(p: Path, text: str) -> Path:
    p.write_text(text, encoding="utf-8")
    return p


def test_config_precedence(tmp_path: Path) -> None:
    cfg = write(tmp_path / "mograg.toml", """
[generator]
kind = "openai"
base_url = "http://file:1/v1"
model = "from-file"
timeout = 5
retries = 4
api_key_env = "MY_KEY"

[serve]
port = 9000
""")
    s = resolve_generator_settings({}, cfg, env={})
    assert (s.kind, s.base_url, s.model, s.timeout, s.retries) == \
        ("openai", "http://file:1/v1", "from-file", 5.0, 4)
    assert s.origin["model"] == str(cfg)
    env = {"MOGRAG_LLM_MODEL": "from-env", "MOGRAG_LLM_TIMEOUT": "7.5", "MY_KEY": "k1",
           "OPENAI_API_KEY": "k2"}
    s = resolve_generator_settings({"model": None}, cfg, env=env)
    assert (s.model, s.timeout, s.retries) == ("from-env", 7.5, 4)
    assert s.origin["model"] == "env:MOGRAG_LLM_MODEL"
    assert s.api_key(env) == "k1"
    s = resolve_generator_settings({"model": "from-flag", "timeout": 9}, cfg, env=env)
    assert (s.model, s.timeout) == ("from-flag", 9.0) and s.origin["model"] == "flag"
    # ./mograg.toml is found by default; nothing configured -> extractive
    assert load_config(None, env={}, cwd=tmp_path).path == cfg
    assert load_config(None, env={}, cwd=tmp_path / "nowhere").path is None
    assert GeneratorSettings().resolved_kind == "extractive"
    assert GeneratorSettings(base_url="http://x/v1").resolved_kind == "openai"
    assert GeneratorSettings().api_key({"OPENAI_API_KEY": "k2"}) == "k2"
    assert isinstance(make_generator(GeneratorSettings()), ExtractiveGenerator)


@pytest.mark.parametrize(("text", "match"), [
    ("[generator]\ntimeout = 'soon'\n", r"generator\.timeout must be a number"),
    ("[generator]\nkind = 'gpt'\n", r"generator\.kind must be one of openai, local, extractive"),
    ("[generator]\nmodle = 'x'\n", r"generator\.modle: unknown key"),
    ("[generator]\napi_key = 'sk-1'\n", r"generator\.api_key: do not put API keys"),
    ("[generator]\nretries = -1\n", r"generator\.retries must be 0 or more"),
    ("[generator]\nbase_url = 'localhost:8080'\n", r"generator\.base_url must be an http"),
    ("[generator\n", r"invalid TOML"),
    ("generator = 3\n", r"'generator' must be a table"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, text: str,
                                                    match: str) -> None:
    cfg = write(tmp_path / "bad.toml", text)
    with pytest.raises(MogragError, match=match) as e:
        load_config(cfg)
    assert str(e.value).startswith(str(cfg)) and "\n" not in str(e.value)


def test_bad_env_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MogragError, match="MOGRAG_LLM_RETRIES must be an integer"):
        resolve_generator_settings({}, None,
                                   env={"MOGRAG_LLM_RETRIES": "many"})
    with pytest.raises(MogragError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(MogragError, match="needs a base URL"):
        make_generator(GeneratorSettings(kind="openai"))


# --------------------------------------------------------------------------- answer evaluation


def test_answer_scores() -> None:
    assert answer_scores("The Denver Broncos [1].", ["Denver Broncos"]) == {"em": 1.0, "f1": 1.0}
    s = answer_scores("Denver won", ["Denver Broncos", "Broncos"])
    assert s["em"] == 0.0 and s["f1"] == pytest.approx(0.5)
    assert answer_scores("", ["x"]) == {"em": 0.0, "f1": 0.0}
    assert answer_for_scoring(f"{EXTRACTIVE_NOTE}\nIt was 79 [1].") == "It was 79 ."


def test_evaluate_answers(ix: Index) -> None:
    qs = [Question("q1", "What buried Pompeii?", ["Vesuvius"]),
          Question("q2", "Which chess piece is the most powerful?", ["the queen"]),
          Question("q3", "no answers here", [], [("cats", 0, 4)])]
    out = evaluate_answers(ix, qs, ExtractiveGenerator(), systems=["level:8", "router:entropy"],
                           budget=64)
    assert out["questions"] == 2 and set(out["systems"]) == {"level:8", "router:entropy"}
    for s in out["systems"].values():
        assert s["answer_in_context"] == 1.0
        assert 0 < s["f1"] < 1 and s["em"] == 0.0
    with pytest.raises(MogragError, match="reference answers"):
        evaluate_answers(ix, qs[2:], ExtractiveGenerator())


# --------------------------------------------------------------------------- POST /ask


def test_post_ask(ix: Index, llm_server) -> None:
    pytest.importorskip("fastapi")
    from mograg.server.app import create_app, running_server
    from mograg.server.ask import make_ask_extension

    httpx = pytest.importorskip("httpx")
    url, _ = llm_server
    settings = resolve_generator_settings({"kind": "openai", "base_url": f"{url}/ok/v1"},
                                          env={})
    app = create_app(ix.root, extensions=[make_ask_extension(settings)])
    with running_server(app) as base:
        r = httpx.post(f"{base}/ask", json={"question": "What buried Pompeii?", "budget": 64})
        assert r.status_code == 200, r.text
        body = r.json()
        assert_contract(body)
        assert body["generator"] == "openai"
        assert_exact_spans(ix, body)
        with httpx.stream("POST", f"{base}/ask",
                          json={"question": "What buried Pompeii?", "stream": True}) as s:
            events = [json.loads(line[5:]) for line in s.iter_lines()
                      if line.startswith("data:")]
        deltas = "".join(e["delta"] for e in events if "delta" in e)
        assert events[-1]["answer"]["answer"] == deltas
        r = httpx.post(f"{base}/ask", json={"question": ""})
        assert r.status_code == 422
    app = create_app(ix.root, extensions=[make_ask_extension(generator=ExtractiveGenerator())])
    with running_server(app) as base:
        body = httpx.post(f"{base}/ask", json={"question": "What buried Pompeii?"}).json()
        assert body["generator"] == "extractive" and body["citations"]
        assert_exact_spans(ix, body)
