"""Evaluation questions in the canonical eval-set format, validated against an index."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

from mograg.errors import InputError
from mograg.eval.question import Question
from mograg.text.safejson import JsonValueError, loads_checked
from mograg.types import Span


def _open_text(path: Path) -> Any:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def load_questions(
    path: str | Path, doc_lengths: dict[str, int] | None = None
) -> tuple[list[Question], list[str]]:
    """Read questions; invalid lines are skipped and described (``file:line: why``).

    With ``doc_lengths`` (doc id -> text length), evidence must name a known document
    and lie inside it.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; give a questions .jsonl(.gz) or .csv file")
    if not p.is_file():  # a FIFO or device would block or never end
        raise InputError(f"{p}: not a regular file; give a questions .jsonl(.gz) or .csv file")
    from mograg.eval.qa import is_qa_file, load_qa_file

    if is_qa_file(p):  # a question/answer table (CSV or JSONL)
        return load_qa_file(p)
    questions: list[Question] = []
    problems: list[str] = []
    seen: set[str] = set()
    try:
        with _open_text(p) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{p}:{lineno}"
                try:
                    q = _parse(loads_checked(line), doc_lengths)
                except JsonValueError as exc:
                    fix = "" if ";" in str(exc) else "; fix or remove the line"
                    problems.append(f"{where}: {exc}{fix}")
                    continue
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                if q.id in seen:
                    problems.append(f"{where}: duplicate question id {q.id!r}; ids must be unique")
                    continue
                seen.add(q.id)
                questions.append(q)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        why = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(
            f"{p}: cannot read ({why}); give a UTF-8 .jsonl or .jsonl.gz file"
        ) from None
    return questions, problems


def _parse(obj: Any, doc_lengths: dict[str, int] | None) -> Question:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    qid, text = obj.get("id"), obj.get("question")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("field 'question' must be a non-empty string")
    if qid is None:
        raise ValueError("field 'id' is missing")
    answers = obj.get("answers") or []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError("field 'answers' must be a list of strings")
    answers = [a for a in answers if a.strip()]
    evidence: list[Span] = []
    for k, ev in enumerate(obj.get("evidence") or []):
        if not isinstance(ev, dict):
            raise ValueError(f"evidence[{k}] must be an object with doc_id, start, end")
        d, s, e = ev.get("doc_id"), ev.get("start"), ev.get("end")
        if not isinstance(d, str) or type(s) is not int or type(e) is not int:
            raise ValueError(f"evidence[{k}] needs doc_id (string), start and end (integers)")
        if doc_lengths is not None:
            if d not in doc_lengths:
                raise ValueError(f"evidence[{k}] names unknown document {d!r}; index it first")
            if not 0 <= s < e <= doc_lengths[d]:
                raise ValueError(
                    f"evidence[{k}] offsets {s}:{e} are outside document {d!r} "
                    f"(length {doc_lengths[d]})"
                )
        elif not 0 <= s < e:
            raise ValueError(f"evidence[{k}] offsets {s}:{e} are invalid (need 0 <= start < end)")
        evidence.append((d, s, e))
    metadata = obj.get("metadata") or {}
    if not evidence and not answers:
        raise ValueError("question has neither evidence nor answers; nothing to score")
    return Question(str(qid), text, answers, evidence,
                    metadata if isinstance(metadata, dict) else {})
