"""Regression tests for the hostile inputs of issue 17: one bad input never costs the
good ones, never hangs, never shows a traceback.

Each case is a small fixture built here; the end-to-end ones run the real CLI in a
subprocess (a FIFO that blocked would hang the test process itself otherwise).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import run
from mograg.errors import MogragError
from mograg.eval.questions import load_questions
from mograg.index.core import Index
from mograg.retrieval.routers import check_router_name
from mograg.text.documents import load_documents
from mograg.types import Document

SRC = Path(__file__).resolve().parents[2] / "src"
GOOD = "Herons stand still in shallow water and strike at passing fish."


def _cli(*args: object, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", "from mograg.cli import main; main()", *map(str, args)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def _jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _good_line(doc_id: str) -> str:
    return json.dumps({"id": doc_id, "text": GOOD})


# name of the fixture file (or file:line) -> what its one problem line must say
BAD_CASES: dict[str, str] = {
    "surrogate-id.jsonl:1": "lone surrogate",
    "surrogate-text.jsonl:1": "lone surrogate",
    "deep-metadata.jsonl:1": "nested deeper",
    "deep-array.jsonl:1": "nested deeper",
    "huge-number.jsonl:1": "5000 digits",
    "zero.txt": "character device",
    "pipe.txt": "FIFO",
    "sub/pipe.md": "FIFO",
    "bomb.jsonl.gz": "gzip bomb",
    "blank.jsonl:1": "only whitespace",
    "big.txt": "limit per file",
}


def _hostile_folder(root: Path) -> Path:
    d = root / "in"
    (d / "sub").mkdir(parents=True)
    (d / "good.txt").write_text(GOOD, encoding="utf-8")
    (d / "sub" / "good.md").write_text("# Herons\n\n" + GOOD, encoding="utf-8")
    _jsonl(d / "surrogate-id.jsonl", '{"id": "\\ud800", "text": "x"}', _good_line("j1"))
    _jsonl(d / "surrogate-text.jsonl", '{"id": "s", "text": "a\\udfffb"}', _good_line("j2"))
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    _jsonl(d / "deep-metadata.jsonl", f'{{"id": "d", "text": "t", "metadata": {deep}}}',
           _good_line("j3"))
    arr = "[" * 200_000 + "]" * 200_000
    _jsonl(d / "deep-array.jsonl", f'{{"id": "a", "text": "t", "metadata": {{"x": {arr}}}}}',
           _good_line("j4"))
    _jsonl(d / "huge-number.jsonl",
           '{"id": "n", "text": "t", "metadata": {"x": ' + "9" * 5000 + "}}", _good_line("j5"))
    _jsonl(d / "blank.jsonl", '{"id": "w", "text": "  \\n\\t "}', _good_line("j6"))
    os.symlink("/dev/zero", d / "zero.txt")
    os.mkfifo(d / "pipe.txt")
    os.mkfifo(d / "sub" / "pipe.md")
    (d / "bomb.jsonl.gz").write_bytes(gzip.compress(b"\n" * 20_000_000, 9))
    (d / "big.txt").write_text("word " * 240_000, encoding="utf-8")  # 1.2 MB > 1 MB limit
    bad_name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 name: not valid UTF-8
    (d / bad_name).write_text(GOOD + " Again.", encoding="utf-8")
    return d


def test_index_keeps_every_good_file_beside_hostile_ones(tmp_path: Path) -> None:
    d = _hostile_folder(tmp_path)
    ix = tmp_path / "ix"
    code, _out, err = _cli("index", d, "--index", ix, env={"MOGRAG_MAX_FILE_MB": "1"})
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    for where, why in BAD_CASES.items():
        hits = [line for line in lines if f"{d.as_posix()}/{where}:" in line]
        assert len(hits) == 1 and why in hits[0], (where, lines)
    name_line = [line for line in lines if "caf\\xe9.txt" in line]
    assert len(name_line) == 1 and "not valid UTF-8" in name_line[0], lines
    assert len(lines) == len(BAD_CASES) + 1, lines
    info = Index.open(ix).info()
    assert info["documents"] == 2 + 6  # good.txt, sub/good.md, the six good JSONL lines


def test_markdown_title_of_a_pathological_h1_line(tmp_path: Path) -> None:
    """`# a` + 100k spaces + `b`: the title regular expression took 151 s."""
    p = tmp_path / "t.md"
    p.write_text("# a" + " " * 100_000 + "b\n\n" + GOOD, encoding="utf-8")
    docs, problems = load_documents([p])
    assert problems == []
    assert docs[0].metadata["title"] == "a" + " " * 100_000 + "b"
    for line, title in [("# Title #", "Title"), ("#  spaced  ##  ", "spaced"),
                        ("# C# #", "C#"), ("# foo#", "foo#"), ("#nospace", None)]:
        p.write_text(line + "\n\nbody", encoding="utf-8")
        assert load_documents([p])[0][0].metadata["title"] == (title or "t"), line


def test_size_limit_is_configurable_and_says_how(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "one-line.txt"
    p.write_text("a" * 3_000_000, encoding="utf-8")  # one 3 MB line, no spaces
    docs, problems = load_documents([p], max_bytes=1_000_000)
    assert docs == [] and len(problems) == 1
    assert "over the 1 MB limit per file" in problems[0].message
    assert "--max-file-mb" in problems[0].message
    monkeypatch.setenv("MOGRAG_MAX_FILE_MB", "2")
    assert "2 MB limit" in load_documents([p])[1][0].message
    monkeypatch.setenv("MOGRAG_MAX_FILE_MB", "4")
    assert len(load_documents([p])[0]) == 1


def test_jsonl_line_limit_and_gzip_output_limit(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "lines.jsonl", json.dumps({"id": "big", "text": "x" * 5000}),
               _good_line("ok"))
    docs, problems = load_documents([p], max_bytes=1000)
    assert [d.id for d in docs] == ["ok"]
    assert [str(x).split(": ")[0] for x in problems] == [f"{p.as_posix()}:1"]
    # a gzip of blank lines expanding 1000x is refused, a normal gzip is read
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b"\n" * 5_000_000 + _good_line("b").encode(), 9))
    docs, problems = load_documents([bomb], max_bytes=1_000_000)
    assert docs == [] and "gzip bomb" in problems[0].message
    fine = tmp_path / "fine.jsonl.gz"
    fine.write_bytes(gzip.compress(("\n" * 1000 + _good_line("g") + "\n").encode()))
    docs, problems = load_documents([fine])
    assert [d.id for d in docs] == ["g"] and problems == []


def test_blank_runs_keep_line_numbers(tmp_path: Path) -> None:
    text = "\n\n  \n" + _good_line("a") + "\r\n \t\n\nnot json\n" + _good_line("b")
    p = tmp_path / "lines.jsonl"
    p.write_bytes(text.encode())
    docs, problems = load_documents([p])
    assert [d.id for d in docs] == ["a", "b"]
    assert [x.path for x in problems] == [f"{p.as_posix()}:7"]


def test_questions_files_with_hostile_lines(tmp_path: Path) -> None:
    good = json.dumps({"id": "q1", "question": "what do herons eat", "answers": ["fish"]})
    p = _jsonl(tmp_path / "q.jsonl",
               '{"id": "q0", "question": "' + "[" * 5 + '", "answers": ' + "[" * 100_000 + "]"
               * 100_000 + "}",
               '{"id": "q2", "question": "\\ud800?", "answers": ["x"]}',
               '{"id": "q3", "question": "n", "answers": ["x"], "metadata": {"n": '
               + "1" * 5000 + "}}",
               good)
    qs, problems = load_questions(p)
    assert [q.id for q in qs] == ["q1"]
    assert len(problems) == 3 and all(x.startswith(f"{p}:") for x in problems), problems
    corrupt = tmp_path / "q.jsonl.gz"
    data = gzip.compress(((good + "\n") * 200).encode())
    corrupt.write_bytes(data[:20] + b"\x00" * 10 + data[30:])
    with pytest.raises(MogragError, match="cannot read"):
        load_questions(corrupt)
    fifo = tmp_path / "q-fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(MogragError, match="not a regular file"):
        load_questions(fifo)


@pytest.mark.parametrize(
    "name", ["entropy", "rrf-levels", "level:32", "graph:64:r=1", "./../../outside", "",
             "a/b", "..", "x" * 65, "caf\udce9"],
)
def test_router_names_are_names_not_paths(name: str) -> None:
    with pytest.raises(MogragError, match="router name"):
        check_router_name(name)


def test_router_names_accepted() -> None:
    for name in ("default", "ridge-v2", "mlp_1.5", "A"):
        assert check_router_name(name) == name


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "ix"
    Index.create(root).add([Document("herons", GOOD), Document("run", "a" * 1_000_000)])
    return root


def test_budget_bounds_a_run_of_letters(small_index: Path) -> None:
    """`--budget 8` returned 1,000,000 characters of one run of letters."""
    for budget in (8, 64, 300):
        res = Index.open(small_index).search("a" * 50, budget=budget, mode="bm25")
        assert sum(h.n_tokens for h in res.hits) <= budget
        assert sum(len(h.text) for h in res.hits) <= 48 * budget


def test_invalid_utf8_query_is_one_line(small_index: Path) -> None:
    for cmd in ("search", "ask"):
        code, _out, err = run(cmd, os.fsdecode(b"caf\xe9"), "--index", small_index)
        assert code == 2 and "not valid UTF-8" in err and "Traceback" not in err, err


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"format": 1}', "null", "7"])
def test_corrupt_or_foreign_manifest_is_one_line(tmp_path: Path, content: str) -> None:
    root = tmp_path / "ix"
    root.mkdir()
    (root / "manifest.json").write_text(content, encoding="utf-8")
    for cmd in ("search", "info"):
        args = [cmd, "q", "--index", root] if cmd == "search" else [cmd, "--index", root]
        code, _out, err = run(*args)
        assert code == 2 and err.count("\n") == 1 and "manifest.json" in err, err


@pytest.mark.parametrize("name", ["entropy", "level:32", "./../../outside"])
def test_train_router_refuses_names_before_any_work(
    small_index: Path, tmp_path: Path, name: str
) -> None:
    q = _jsonl(tmp_path / "q.jsonl", json.dumps(
        {"id": "q1", "question": "herons", "evidence": [{"doc_id": "herons", "start": 0,
                                                         "end": 10}]}))
    before = sorted(p.name for p in small_index.parent.iterdir())
    code, _out, err = run("train-router", "--index", small_index, "--questions", q,
                          "--name", name)
    assert code == 2 and "router name" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in small_index.parent.iterdir()) == before
    assert "routers" not in Index.open(small_index).manifest
