"""`mograg search` / `ask` through a real running `mograg serve`: same output as in-process,
and back to in-process whenever the server cannot be trusted to answer for the index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from clirun import run
from corpus import TOPICS
from mograg.server.endpoint import ENDPOINT, read_endpoint

SRC = Path(__file__).resolve().parents[2] / "src"
QUERY = "what buried Pompeii"


class Served:
    """A `mograg serve --port 0` process; ``requests(path)`` counts its access-log lines."""

    def __init__(self, index: Path, log: Path) -> None:
        self.index, self.log = index, log
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC),
                                                            os.environ.get("PYTHONPATH", "")])}
        with log.open("w") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from mograg.cli.app import main; main()", "serve",
                 "--index", str(index), "--port", "0"],
                stdout=f, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while read_endpoint(index) is None or read_endpoint(index).pid != self.proc.pid:
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def requests(self, path: str) -> int:
        return self.log.read_text().count(f'"POST {path} HTTP/1.1" 200')

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": v}) + "\n"
                           for k, v in TOPICS.items()), encoding="utf-8")
    ix = tmp_path / "ix"
    code, _, err = run("index", src, "--index", ix, "--levels", "32,64", "--quiet")
    assert code == 0, err
    return ix


@pytest.fixture()
def served(index: Path, tmp_path: Path) -> Iterator[Served]:
    s = Served(index, tmp_path / "serve.log")
    yield s
    s.stop(signal.SIGKILL)


def _ok(*args: object) -> str:
    code, out, err = run(*args)
    assert code == 0, err
    return out


def _without_timings(answer_json: str) -> dict:
    data = json.loads(answer_json)
    for key in ("retrieval_seconds", "generation_seconds"):
        data["usage"].pop(key)
    return data


def test_search_and_ask_through_the_server_print_the_same(served: Served) -> None:
    ix = served.index
    for extra in ([], ["--json"], ["--mode", "bm25", "--budget", "64"], ["--level", "32"]):
        before = served.requests("/search")
        remote = _ok("search", QUERY, "--index", ix, *extra)
        assert served.requests("/search") == before + 1  # the server answered
        assert remote == _ok("search", QUERY, "--index", ix, "--no-server", *extra)
        assert served.requests("/search") == before + 1  # --no-server did not ask it
    assert "volcano" in remote
    before = served.requests("/ask")
    text = _ok("ask", "What buried Pompeii?", "--index", ix)
    assert text == _ok("ask", "What buried Pompeii?", "--index", ix, "--no-server")
    as_json = _ok("ask", "What buried Pompeii?", "--index", ix, "--json")
    assert served.requests("/ask") == before + 2
    assert _without_timings(as_json) == _without_timings(
        _ok("ask", "What buried Pompeii?", "--index", ix, "--json", "--no-server"))
    # errors come from the in-process run, worded as without a server
    code, _, err = run("search", QUERY, "--index", ix, "--router", "no-such-router")
    assert code == 2 and err == run("search", QUERY, "--index", ix, "--router",
                                    "no-such-router", "--no-server")[2]


def test_a_new_generation_is_never_answered_from_the_old_one(served: Served,
                                                             tmp_path: Path) -> None:
    ix = served.index
    extra = tmp_path / "new.jsonl"
    extra.write_text(json.dumps({"id": "zeppelin", "text": "The Hindenburg zeppelin burned "
                                 "at Lakehurst in 1937 while landing."}) + "\n")
    _ok("index", extra, "--index", ix, "--quiet")
    q = "Which zeppelin burned at Lakehurst?"
    got = _ok("search", q, "--index", ix, "--json")  # the server, if it reloaded, or here
    assert json.loads(got)["hits"][0]["doc_id"] == "zeppelin"
    assert got == _ok("search", q, "--index", ix, "--json", "--no-server")


def test_other_generator_or_foreign_or_dead_server_means_in_process(served: Served) -> None:
    ix = served.index
    before = served.requests("/ask")
    code, _, err = run("ask", "What buried Pompeii?", "--index", ix, "--generator", "openai",
                       "--base-url", "http://127.0.0.1:9/v1", "--timeout", "1")
    assert code == 2 and "127.0.0.1:9" in err  # tried its own generator, not the server's
    assert served.requests("/ask") == before
    # a serve.json whose token is not the server's (a port taken over by another process)
    endpoint = ix / ENDPOINT
    real = endpoint.read_text()
    endpoint.write_text(real.replace(json.loads(real)["instance"], "0" * 24))
    before = served.requests("/search")
    assert _ok("search", QUERY, "--index", ix) == _ok("search", QUERY, "--index", ix,
                                                      "--no-server")
    assert served.requests("/search") == before + 1  # it asked, saw the token, went local
    endpoint.write_text(real)
    served.stop(signal.SIGKILL)  # leaves serve.json behind, naming a dead process
    assert endpoint.exists()
    assert _ok("search", QUERY, "--index", ix) == _ok("search", QUERY, "--index", ix,
                                                      "--no-server")


def test_serve_json_is_removed_on_sigterm(served: Served) -> None:
    assert (served.index / ENDPOINT).exists()
    served.stop(signal.SIGTERM)
    assert served.proc.returncode is not None
    assert not (served.index / ENDPOINT).exists()


def test_through_the_server_nothing_heavy_is_loaded(served: Served) -> None:
    script = (
        "import sys, json\n"
        "from mograg.cli import main\n"
        "try:\n"
        f"    main(['search', {QUERY!r}, '--index', {str(served.index)!r}, '--json'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    before = served.requests("/search")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, check=True)
    assert served.requests("/search") == before + 1
    assert json.loads(done.stdout)["hits"][0]["doc_id"] == "volcano"
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert not loaded & {"numpy", "onnxruntime", "tokenizers", "mograg.index.core"}
