"""End-to-end tests of the ``mograg`` command line on a tiny corpus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clirun import run
from corpus import field_notes
from mograg.text.documents import load_documents
from mograg.text.tokens import count_tokens

LEVELS = [32, 64, 128, 256, 512]
QUERY = "What does the heron eat in winter?"
SRC = Path(__file__).resolve().parents[2] / "src"

def search_json(index: Path, *extra: object) -> dict:
    code, out, err = run("search", QUERY, "--index", index, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    (d / "a.txt").write_text("# Herons\n\n" + field_notes(1, 30), encoding="utf-8")
    (d / "b.md").write_text("# Otters\n\n" + field_notes(2, 22), encoding="utf-8")
    recs = [{"id": "rec-1", "text": field_notes(3, 12), "metadata": {"k": 1}}]
    (d / "c.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def built(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("ix") / "index"
    code, out, err = run("index", corpus, "--index", index, "--quiet")
    assert code == 0, err
    assert "3 document(s) (3 added, 0 replaced)" in out
    return index


@pytest.fixture(scope="module")
def texts(corpus: Path) -> dict[str, str]:
    docs, problems = load_documents([str(corpus)])
    assert not problems
    return {d.id: d.text for d in docs}


# --------------------------------------------------------------------------- happy path


def test_search_json_contract(built: Path, texts: dict[str, str]) -> None:
    res = search_json(built)
    assert res["query"] == QUERY
    assert res["hits"], res
    for h in res["hits"]:
        assert {"doc_id", "start", "end", "level", "score", "text"} <= set(h)
        assert h["text"] == texts[h["doc_id"]][h["start"] : h["end"]]
        assert h["level"] in LEVELS
    assert sum(h["n_tokens"] for h in res["hits"]) <= 256
    assert sum(count_tokens([h["text"] for h in res["hits"]])) <= 256
    assert "heron" in res["hits"][0]["text"].lower()


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_searchable(built: Path, texts: dict[str, str], level: int) -> None:
    res = search_json(built, "--level", level, "--budget", 512)
    hits = res["hits"]
    assert hits
    assert hits[0]["level"] == level
    assert all(h["level"] <= level for h in hits)
    assert sum(count_tokens([h["text"] for h in hits])) <= 512
    for h in hits:
        assert h["text"] == texts[h["doc_id"]][h["start"] : h["end"]]


def test_search_modes_routers_and_readable_output(built: Path) -> None:
    for extra in (["--mode", "bm25"], ["--mode", "dense"], ["--router", "level:64"],
                  ["--strategy", "mix"], ["--strategy", "blend"], ["--router", "entropy"]):
        res = search_json(built, "--budget", 100, *extra)
        assert res["hits"] and sum(h["n_tokens"] for h in res["hits"]) <= 100, extra
    code, out, err = run("search", QUERY, "--index", built, "--budget", 64)
    assert code == 0, err
    assert "#1" in out and "level" in out and "score" in out


def test_info_json(built: Path) -> None:
    code, out, err = run("info", "--index", built, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["levels"] == LEVELS
    assert info["documents"] == 3
    assert info["chunks"] >= 3 * len(LEVELS)
    assert info["bytes"] > 0
    code, out, _ = run("info", "--index", built)
    assert code == 0 and "documents" in out


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("mograg ")


# --------------------------------------------------------------------------- writes


def test_delete(built: Path, corpus: Path, tmp_path: Path) -> None:
    ix = copy_index(built, tmp_path / "ix")
    a_id = "a.txt"  # ids are relative to the folder indexed
    code, out, err = run("delete", a_id, "--index", ix)
    assert code == 0, err
    assert "deleted 1" in out
    assert json.loads(run("info", "--index", ix, "--json")[1])["documents"] == 2
    assert all(h["doc_id"] != a_id for h in search_json(ix)["hits"])
    code, out, err = run("delete", "no-such-doc", "rec-1", "--index", ix)
    assert code == 1
    assert "no-such-doc" in err and "Traceback" not in err
    assert json.loads(run("info", "--index", ix, "--json")[1])["documents"] == 1


def test_reindex_replaces(tmp_path: Path) -> None:
    doc = tmp_path / "note.txt"
    doc.write_text("The lighthouse keeper logs every passing ship. " * 3, encoding="utf-8")
    ix = tmp_path / "ix"
    assert run("index", doc, "--index", ix)[0] == 0
    doc.write_text("The orchard grows forty kinds of apple trees. " * 3, encoding="utf-8")
    code, out, err = run("index", doc, "--index", ix)
    assert code == 0, err
    assert "(0 added, 1 replaced)" in out
    assert json.loads(run("info", "--index", ix, "--json")[1])["documents"] == 1
    code, out, _ = run("search", "apple orchard", "--index", ix, "--json")
    hits = json.loads(out)["hits"]
    assert hits and all("apple" in h["text"] for h in hits)
    assert not any("lighthouse" in h["text"] for h in hits)


# --------------------------------------------------------------------------- bad input


def _minimal_broken_pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer garbage"


def test_bad_input_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("Good file about herons and fish. It is fine.\n", "utf-8")
    (src / "empty.txt").write_bytes(b"")
    (src / "binary.txt").write_bytes(b"\x00\x01\x02\x03binary\x00" * 20)
    (src / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    (src / "broken.pdf").write_bytes(_minimal_broken_pdf())
    (src / "recs.jsonl").write_text(
        '{"id": "ok-1", "text": "A valid record about otters."}\n'
        '{"id": "bad", "text": \n'
        '{"id": "ok-2", "text": "Another valid record about badgers."}\n',
        encoding="utf-8",
    )
    missing = tmp_path / "missing.txt"
    ix = tmp_path / "ix"
    code, out, err = run("index", src, missing, "--index", ix)
    assert code != 0
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    for name in ("empty.txt", "binary.txt", "latin1.txt", "broken.pdf", "recs.jsonl:2",
                 "missing.txt"):
        named = [ln for ln in lines if name in ln]
        assert len(named) == 1, (name, lines)
        assert named[0].startswith("error: ")
    assert "good.txt" not in err
    info = json.loads(run("info", "--index", ix, "--json")[1])
    assert info["documents"] == 3  # good.txt, ok-1, ok-2


def test_only_bad_input_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    code, _, err = run("index", tmp_path / "empty.txt", "--index", tmp_path / "ix")
    assert code != 0 and "empty.txt" in err and "Traceback" not in err
    assert not (tmp_path / "ix" / "manifest.json").exists()


def _one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert "Traceback" not in out + err
    return lines[0]


def test_bad_flags(built: Path, corpus: Path, tmp_path: Path) -> None:
    line = _one_error_line(*run("search", QUERY, "--index", built, "--level", 33))
    assert "33" in line
    line = _one_error_line(*run("index", corpus, "--index", tmp_path / "n", "--levels", "16,3x"))
    assert "levels" in line
    assert not (tmp_path / "n").exists()
    _one_error_line(*run("index", corpus, "--index", tmp_path / "m", "--levels", "64,32"))
    line = _one_error_line(*run("index", corpus, "--index", built, "--levels", "16,32"))
    assert "levels" in line
    _one_error_line(*run("search", QUERY, "--index", built, "--mode", "fuzzy"))
    _one_error_line(*run("search", QUERY, "--index", built, "--budget", "lots"))
    _one_error_line(*run("search", QUERY, "--index", built, "--budget", 0))
    _one_error_line(*run("search", QUERY, "--index", built, "--router", "nope"))
    _one_error_line(*run("search", QUERY, "--index", tmp_path / "nothing-here"))
    _one_error_line(*run("info", "--index", corpus))
    _one_error_line(*run("search", "--index", built))
    _one_error_line(*run("frobnicate"))


def test_demo_corpus_is_consistent() -> None:
    from mograg.cli.demo import _demo_data, _demo_documents

    docs = {d.id: d.text for d in _demo_documents()}
    assert 30_000 <= sum(len(t.encode()) for t in docs.values()) <= 60_000
    lines = (_demo_data() / "questions.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 4
    for line in lines:
        q = json.loads(line)
        assert {"id", "question", "answers", "evidence", "metadata"} <= set(q)
        for ev in q["evidence"]:
            assert 0 <= ev["start"] < ev["end"] <= len(docs[ev["doc_id"]])
    assert (_demo_data() / "SOURCES.md").exists()


# --------------------------------------------------------------------------- crash safety


def _write_jsonl(path: Path, n_docs: int, n_sentences: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n_docs):
            rec = {"id": f"big-{i}", "text": field_notes(100 + i, n_sentences)}
            f.write(json.dumps(rec) + "\n")
    return path


def _start_index(source: Path, ix: Path) -> subprocess.Popen[str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", "from mograg.cli.app import main; main()",
         "index", str(source), "--index", str(ix)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": path},
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("delay", [1.0])
def test_sigkill_mid_index_keeps_previous_index(
    built: Path, tmp_path: Path, delay: float
) -> None:
    ix = copy_index(built, tmp_path / "ix")
    before = search_json(ix)
    info_before = json.loads(run("info", "--index", ix, "--json")[1])
    big = _write_jsonl(tmp_path / "big.jsonl", 40, 25)  # ~50 s of work if not killed
    proc = _start_index(big, ix)
    try:
        assert proc.stderr is not None
        status = proc.stderr.readline()  # "indexing N document(s) into ..." (work starts)
        assert "indexing" in status, status
        time.sleep(delay)
        assert proc.poll() is None, "indexing finished before it could be killed"
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert search_json(ix) == before
    info_after = json.loads(run("info", "--index", ix, "--json")[1])
    assert info_after["documents"] == info_before["documents"]
    assert info_after["generation"] == info_before["generation"]
    # the killed writer left nothing that blocks the next one
    extra = tmp_path / "extra.txt"
    extra.write_text("The kingfisher dives for minnows at dawn.", encoding="utf-8")
    code, _, err = run("index", extra, "--index", ix, "--quiet")
    assert code == 0, err
    assert json.loads(run("info", "--index", ix, "--json")[1])["documents"] == 4
    assert search_json(ix)["hits"]


def test_sigkill_while_writing_files(built: Path, tmp_path: Path) -> None:
    """Kill as soon as new segment files appear: the index is the old one or the new one."""
    ix = copy_index(built, tmp_path / "ix")
    before = search_json(ix)
    gen = json.loads(run("info", "--index", ix, "--json")[1])["generation"]
    old = {p.name for p in (ix / "segments").iterdir()}
    small = _write_jsonl(tmp_path / "small.jsonl", 3, 8)
    proc = _start_index(small, ix)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if {p.name for p in (ix / "segments").iterdir()} - old:
                break
            time.sleep(0.002)
        if proc.poll() is None:
            _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    info = json.loads(run("info", "--index", ix, "--json")[1])
    if info["generation"] == gen:
        assert search_json(ix) == before
        assert info["documents"] == 3
    else:  # the commit completed before the kill landed
        assert info["generation"] == gen + 1
        assert info["documents"] == 6
    assert search_json(ix)["hits"]


def test_demo_end_to_end(tmp_path: Path) -> None:
    """README's first command: index the bundled corpus and answer its sample questions."""
    code, out, err = run("demo", "--dir", tmp_path / "demo", "-q")
    assert code == 0, err
    assert out.count("router ") >= 4 and "chose level:" in out
    assert "Traceback" not in out + err
    # a second run reuses the index instead of rebuilding it
    generation = json.loads((tmp_path / "demo" / "manifest.json").read_text())["generation"]
    code, _, err = run("demo", "--dir", tmp_path / "demo", "-q")
    assert code == 0, err
    assert json.loads((tmp_path / "demo" / "manifest.json").read_text())["generation"] == generation
    # the tour that follows in the README: train a router on the demo questions, evaluate it
    questions = Path(__file__).resolve().parents[2] / "src/mograg/data/demo/questions.jsonl"
    code, out, err = run("train-router", "--index", tmp_path / "demo", "--questions", questions,
                         "--name", "demo", "--model", "prior", "--json")
    assert code == 0, err
    assert json.loads(out)["router"] == "demo"
    report = tmp_path / "report"
    code, out, err = run("eval", "--index", tmp_path / "demo", "--questions", questions,
                         "--router", "demo", "--budget", "128,256", "--report", report,
                         "--json", "-q")
    assert code == 0, err
    results = json.loads(out)
    assert [r["budget"] for r in results] == [128, 256]
    for r in results:
        systems = r["systems"]
        assert {"best_fixed", "oracle", "router:entropy", "router:demo+blend"} <= set(systems)
        assert systems["oracle"]["recall"] >= systems["best_fixed"]["recall"]
    assert (report / "report.html").exists()
    assert {p.name for p in report.glob("*.png")} >= {
        "recall_vs_budget.png", "oracle_choice.png", "best_fixed_vs_oracle.png"}
    # the trained router is now the index's default
    code, out, err = run("search", "What is mograg?", "--index", tmp_path / "demo", "--json")
    assert code == 0, err
    assert json.loads(out)["routing"]["router"] == "demo"
