"""Tests for mograg.eval.questions: loading and validating evaluation questions."""

from __future__ import annotations

import gzip
import json

import pytest

from mograg.errors import InputError, MogragError
from mograg.eval.questions import load_questions

LENGTHS = {"doc-a": 100, "doc-b": 50}


def ev(doc: str, start: int, end: int) -> dict:
    return {"doc_id": doc, "start": start, "end": end}


GOOD = [
    {"id": "q1", "question": "What is A?", "answers": ["alpha"], "evidence": [ev("doc-a", 0, 10)]},
    {"id": 2, "question": "Only answers?", "answers": ["beta"]},
    {"id": "q3", "question": "Two docs", "evidence": [ev("doc-a", 90, 100), ev("doc-b", 0, 50)],
     "metadata": {"corpus": "test"}},
]


def write_lines(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_good_questions(tmp_path):
    p = tmp_path / "q.jsonl"
    write_lines(p, [json.dumps(q) for q in GOOD])
    qs, problems = load_questions(p, LENGTHS)
    assert problems == []
    assert [q.id for q in qs] == ["q1", "2", "q3"]
    assert qs[0].answers == ["alpha"]
    assert qs[0].evidence == [("doc-a", 0, 10)]
    assert qs[1].evidence == []
    assert qs[2].evidence == [("doc-a", 90, 100), ("doc-b", 0, 50)]
    assert qs[2].metadata == {"corpus": "test"}


def test_gzip_and_blank_lines(tmp_path):
    p = tmp_path / "q.jsonl.gz"
    body = "\n\n" + json.dumps(GOOD[0]) + "\n   \n" + json.dumps(GOOD[1]) + "\n"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write(body)
    qs, problems = load_questions(p, LENGTHS)
    assert [q.id for q in qs] == ["q1", "2"]
    assert problems == []


BAD = [
    ("{not json", "invalid JSON"),
    ('["a list"]', "JSON object"),
    (json.dumps({"id": "b1", "evidence": [ev("doc-a", 0, 5)]}), "question"),
    (json.dumps({"id": "b2", "question": "   ", "answers": ["x"]}), "question"),
    (json.dumps({"question": "no id", "answers": ["x"]}), "'id'"),
    (json.dumps({"id": "b3", "question": "q", "evidence": [ev("doc-zzz", 0, 5)]}), "doc-zzz"),
    (json.dumps({"id": "b4", "question": "q", "evidence": [ev("doc-b", 40, 51)]}), "40:51"),
    (json.dumps({"id": "b5", "question": "q", "evidence": [ev("doc-a", -1, 5)]}), "-1:5"),
    (json.dumps({"id": "b6", "question": "q", "evidence": [ev("doc-a", 5, 5)]}), "5:5"),
    (json.dumps({"id": "b7", "question": "q", "evidence": [ev("doc-a", "0", 5)]}), "integers"),
    (json.dumps({"id": "b8", "question": "q", "evidence": ["doc-a"]}), "evidence[0]"),
    (json.dumps({"id": "b9", "question": "q", "answers": "alpha"}), "answers"),
    (json.dumps({"id": "b10", "question": "q"}), "neither evidence nor answers"),
    (json.dumps({"id": "q1", "question": "dup", "answers": ["x"]}), "duplicate"),
]


def test_bad_lines_are_reported_with_file_and_line(tmp_path):
    p = tmp_path / "mixed.jsonl"
    lines = [json.dumps(GOOD[0])] + [b for b, _ in BAD] + [json.dumps(GOOD[2])]
    write_lines(p, lines)
    qs, problems = load_questions(p, LENGTHS)
    assert [q.id for q in qs] == ["q1", "q3"]
    assert len(problems) == len(BAD)
    for k, (problem, (_, needle)) in enumerate(zip(problems, BAD, strict=True)):
        assert problem.startswith(f"{p}:{k + 2}: "), problem
        assert needle in problem, (needle, problem)
        assert "\n" not in problem


def test_offsets_checked_without_lengths(tmp_path):
    p = tmp_path / "q.jsonl"
    write_lines(p, [
        json.dumps({"id": "a", "question": "q", "evidence": [ev("anything", 0, 10_000)]}),
        json.dumps({"id": "b", "question": "q", "evidence": [ev("anything", 7, 3)]}),
    ])
    qs, problems = load_questions(p)  # no doc lengths: unknown docs are fine
    assert [q.id for q in qs] == ["a"]
    assert len(problems) == 1 and problems[0].startswith(f"{p}:2: ")


def test_evidence_at_document_end_is_valid(tmp_path):
    p = tmp_path / "q.jsonl"
    write_lines(p, [json.dumps({"id": "a", "question": "q", "evidence": [ev("doc-b", 0, 50)]})])
    qs, problems = load_questions(p, LENGTHS)
    assert len(qs) == 1 and problems == []


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jsonl"
    with pytest.raises(InputError) as err:
        load_questions(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, MogragError)


def test_not_utf8(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"id": "a", "question": "caf\xe9", "answers": ["x"]}\n')
    with pytest.raises(InputError) as err:
        load_questions(p)
    assert str(p) in str(err.value)


def test_blank_answers_only_is_rejected(tmp_path):
    p = tmp_path / "q.jsonl"
    write_lines(p, [json.dumps({"id": "w", "question": "q", "answers": ["  ", ""]})])
    qs, problems = load_questions(p, LENGTHS)
    assert qs == []
    assert len(problems) == 1 and "neither evidence nor answers" in problems[0]
