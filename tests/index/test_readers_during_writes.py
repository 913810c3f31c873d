"""Readers never fail while another process writes (adds, deletes, merges, collects).

A real writer process adds and deletes documents in a loop (enough commits to merge
segments and garbage-collect superseded ones) while this process searches the same
index three ways: ``Index.open`` + search, the CLI, and the HTTP API. Every search
must succeed; "rebuild the index" is for damaged indexes only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import run
from corpus import TOPIC_QUERIES, TOPICS
from mograg.errors import IndexFormatError
from mograg.index.commit import MAX_SEGMENTS
from mograg.index.core import Index
from mograg.types import Document

SRC = Path(__file__).resolve().parents[2] / "src"

WRITER = """
import sys
from mograg.index.core import Index
from mograg.types import Document
import os, time
ix_path, n, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
while not os.path.exists(go):  # start once the readers run (models loaded)
    time.sleep(0.01)
for i in range(n):
    ix = Index.open(ix_path)
    ix.add([Document(f"w{i}", f"Writer note {i}: herons fish at dawn near reed beds.")])
    if i >= 2:
        Index.open(ix_path).delete([f"w{i - 2}"])
    print(i, flush=True)
"""


def _start_writer(ix: Path, n: int, go: Path) -> subprocess.Popen[str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(ix), str(n), str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": path},
    )


@pytest.fixture()
def index_path(tmp_path: Path) -> Path:
    root = tmp_path / "ix"
    ix = Index.create(root)
    ix.add([Document(k, v) for k, v in TOPICS.items()])
    return root


def test_searches_never_fail_while_a_writer_adds_deletes_and_merges(index_path: Path) -> None:
    pytest.importorskip("uvicorn")
    import httpx

    from mograg.server.app import IndexService, create_app, running_server

    n_writes = MAX_SEGMENTS + 4  # enough commits for at least one merge of segments
    errors: list[str] = []
    counts = {"open": 0, "cli": 0, "api": 0}
    service = IndexService(index_path, reload_interval=0.0)
    with running_server(create_app(service)) as url, httpx.Client(base_url=url) as http:
        go = index_path.parent / "go"
        writer = _start_writer(index_path, n_writes, go)
        try:
            k = 0
            while writer.poll() is None:
                if k == 1:
                    go.touch()  # every reader has run once: the writer may start
                q = TOPIC_QUERIES[k % len(TOPIC_QUERIES)]
                k += 1
                try:
                    Index.open(index_path).search(q, budget=48)
                    counts["open"] += 1
                except Exception as exc:  # every failure counts, whatever its type
                    errors.append(f"open: {type(exc).__name__}: {exc}")
                code, _out, err = run("search", q, "--index", index_path, "--budget", 48,
                                      "--json")
                counts["cli"] += 1
                if code != 0:
                    errors.append(f"cli: {err.strip()}")
                resp = http.post("/search", json={"query": q, "budget": 48})
                counts["api"] += 1
                if resp.status_code != 200:
                    errors.append(f"api: {resp.status_code} {resp.text[:200]}")
            _out, werr = writer.communicate(timeout=120)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert writer.returncode == 0, werr
    assert errors == [], errors
    assert min(counts.values()) >= 3, counts  # the readers really overlapped the writer
    info = json.loads(run("info", "--index", index_path, "--json")[1])
    assert info["documents"] == len(TOPICS) + 2
    assert len(Index.open(index_path).manifest["segments"]) <= MAX_SEGMENTS


def test_a_reader_whose_generation_was_collected_opens_the_newest(index_path: Path) -> None:
    """The race itself, made deterministic: manifest read, then a commit collects it."""
    reader = Index.open(index_path)  # manifest read; no segment opened yet
    Index.open(index_path).delete(["cats"])  # rewrites the only segment, collects the old
    assert not (index_path / "segments" / reader.manifest["segments"][0]).exists()
    hits = reader.search("what buried Pompeii", budget=32).hits
    assert hits and reader.manifest["generation"] == 2


def test_a_damaged_segment_still_says_rebuild(index_path: Path) -> None:
    """With nothing collected, unreadable files are real damage and the error says so."""
    ix = Index.open(index_path)
    seg = index_path / "segments" / ix.manifest["segments"][0]
    (seg / "atoms.npy").write_bytes(b"garbage")
    with pytest.raises(IndexFormatError, match="rebuild"):
        Index.open(index_path).search("cats", budget=32)
    code, _out, err = run("search", "cats", "--index", index_path)
    assert code == 2 and "rebuild" in err and "Traceback" not in err



def test_a_segment_collected_while_it_is_being_opened_opens_the_newest(index_path: Path) -> None:
    """The same race inside one segment's opening: its directory still there but its
    text file already unlinked by the collecting writer (a raw FileNotFoundError once)."""
    reader = Index.open(index_path)
    seg = index_path / "segments" / reader.manifest["segments"][0]
    saved = index_path.parent / "saved-segment"
    shutil.copytree(seg, saved)
    Index.open(index_path).delete(["cats"])  # collects that segment
    shutil.copytree(saved, seg)  # ... as if caught halfway through its removal
    (seg / "text.bin").unlink()
    hits = reader.search("what buried Pompeii", budget=32).hits
    assert hits and reader.manifest["generation"] == 2
