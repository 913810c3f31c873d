"""Question/answer files (CSV or JSONL) and how well a retrieved context covers an answer.

Analysts write evaluation sets as a table: a question, and an answer that may end with
the documents it came from ("Source: Q1 2023 Earnings Call, pg 2"). Three measures say
whether a context would let a reader answer:

- **token recall**: the share of the answer's content words found in the context;
- **figure recall**: the share of the answer's figures (84%, $394 million, 1,350) found
  in the context, digits compared without separators;
- **right source**: some hit comes from a document the answer names as its source.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mograg.text.safejson import loads_checked

__all__ = [
    "answer_figures",
    "answer_tokens",
    "cited_sources",
    "figure_recall",
    "is_qa_file",
    "load_qa_file",
    "names_source",
    "split_answer",
    "token_recall",
]

QUESTION_KEYS = ("question", "query", "q")
ANSWER_KEYS = ("answer", "answers", "reference", "ground_truth", "a")
EXPECTED = "question and answer columns (CSV header or JSONL keys)"

_SOURCE_LINE = re.compile(r"^\s*sources?\s*:\s*(.*)$", re.I | re.M)
_WORD = re.compile(r"[^\W_]+(?:[.,'][^\W_]+)*")
_FIGURE = re.compile(r"(?<![\w.])[$€£]?\d[\d,]*(?:\.\d+)?%?")
_STOP_WORDS = (
    "a an and are as at be by for from has have in is it its of on or that the their this "
    "to was were which will with we our you they he she i"
)
_STOP = frozenset(_STOP_WORDS.split())
# words that say what kind of document a source is, not which one
_GENERIC_WORDS = "pg page pages p call calls earning earnings report for and"
_GENERIC_SOURCE = frozenset(_GENERIC_WORDS.split())


def split_answer(answer: str) -> tuple[str, list[str]]:
    """``(answer text, cited sources)``: everything after a "Source(s):" line is the list
    of sources, one per line or comma-free text on the same line."""
    m = _SOURCE_LINE.search(answer)
    if m is None:
        return answer.strip(), []
    body = answer[: m.start()].strip()
    tail = (m.group(1) + "\n" + answer[m.end():]).strip()
    sources = [s.strip() for s in tail.split("\n") if s.strip()]
    sources = [s for s in sources if s.lower() not in ("n/a", "na", "none", "-")]
    return body, sources


def answer_tokens(text: str) -> set[str]:
    """Lowercased content words and numbers of ``text`` (stopwords removed)."""
    return {w for w in (t.lower().replace(",", "") for t in _WORD.findall(text))
            if w not in _STOP}


def _norm_figure(f: str) -> str:
    f = f.rstrip("%").lstrip("$€£").replace(",", "")
    return f[:-2] if f.endswith(".0") else f


_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.M)
_YEAR = re.compile(r"^(?:19|20)\d{2}$")


def answer_figures(text: str) -> set[str]:
    """Figures of an answer: amounts, percentages, counts (normalised: no currency sign,
    separators or "%"). List numbers ("1. ...") and years name no figure and are left out."""
    text = _LIST_MARKER.sub(" ", text)
    figures = {_norm_figure(f) for f in _FIGURE.findall(text)}
    return {f for f in figures if not _YEAR.match(f)}


def token_recall(context: str, answer: str) -> float:
    """Share of the answer's content words that occur in the context."""
    want = answer_tokens(answer)
    return len(want & answer_tokens(context)) / len(want) if want else float("nan")


def figure_recall(context: str, answer: str) -> float:
    """Share of the answer's figures found in the context (NaN when it has none)."""
    want = answer_figures(answer)
    return len(want & answer_figures(context)) / len(want) if want else float("nan")


def cited_sources(sources: Sequence[str]) -> list[frozenset[str]]:
    """The identifying words of each cited source ("Q1 2023 Earnings Call, pg 2" ->
    {q1, 2023}); "pg1 for Q1, Q2, Q3 2023" names three sources (q1 2023, ...)."""
    out: list[frozenset[str]] = []
    for s in sources:
        s = re.sub(r"\b(?:pg|page|p)\.?\s*\d+\b", " ", s, flags=re.I)
        words = [w for w in answer_tokens(s) if w not in _GENERIC_SOURCE]
        quarters = [w for w in words if re.fullmatch(r"q[1-4]", w)]
        rest = frozenset(w for w in words if w not in quarters)
        if len(quarters) > 1:
            out.extend(rest | {q} for q in quarters)
        elif words:
            out.append(frozenset(words))
    return out


def names_source(doc_name: str, sources: Sequence[frozenset[str]]) -> bool:
    """True if the document name holds every identifying word of one cited source."""
    have = answer_tokens(re.sub(r"[_/\\-]", " ", doc_name))
    return any(src and src <= have for src in sources)


# ----------------------------------------------------------------------------- files


def is_qa_file(path: Path) -> bool:
    """True for a CSV, or a JSONL whose first record has no ``id``/``evidence`` but an
    answer column (the eval-set format is read by :mod:`mograg.eval.questions`)."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return True
    try:
        first = _first_record(path)
    except (OSError, ValueError, EOFError, zlib.error):  # incl. JsonValueError: not QA
        return False
    if not isinstance(first, dict) or "evidence" in first or "answers" in first:
        return False
    keys = {k.lower() for k in first}
    return bool(keys & set(ANSWER_KEYS)) and bool(keys & set(QUESTION_KEYS))


def _open_text(path: Path) -> io.TextIOBase:
    import gzip

    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _first_record(path: Path) -> Any:
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                return loads_checked(line)
    return None


def _rows(path: Path) -> list[dict[str, Any]]:
    with _open_text(path) as f:
        if path.name.lower().endswith((".csv", ".csv.gz")):
            return [dict(r) for r in csv.DictReader(f)]
        return [loads_checked(line) for line in f if line.strip()]


def _column(keys: Sequence[str], wanted: Sequence[str]) -> str | None:
    low = {k.lower().strip(): k for k in keys}
    for w in wanted:
        if w in low:
            return low[w]
    return None


def load_qa_file(path: str | Path) -> tuple[list[Any], list[str]]:
    """Questions of a CSV/JSONL question-answer file as :class:`mograg.eval.questions.Question`.

    Each answer's "Source:" lines become ``metadata["sources"]``. Rows without a question
    or answer are skipped and described.

    Raises:
        InputError: unreadable file, or no question/answer columns (one line naming them).
    """
    from mograg.errors import InputError
    from mograg.eval.question import Question

    p = Path(path)
    try:
        rows = _rows(p)
    except (OSError, EOFError, ValueError, zlib.error, csv.Error) as exc:  # JsonValueError too
        raise InputError(f"{p}: cannot read ({exc}); give a UTF-8 CSV or JSONL file") from None
    keys = list(rows[0]) if rows and isinstance(rows[0], dict) else []
    qk, ak = _column(keys, QUESTION_KEYS), _column(keys, ANSWER_KEYS)
    if qk is None or ak is None:
        found = ", ".join(map(str, keys)) or "none"
        raise InputError(f"{p}: expected {EXPECTED}; found columns: {found}")
    questions: list[Any] = []
    problems: list[str] = []
    for n, row in enumerate(rows, start=1):
        q, a = row.get(qk), row.get(ak)
        if isinstance(a, list):
            a = "\n".join(str(x) for x in a)
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
            problems.append(f"{p}:{n}: empty question or answer; skipped")
            continue
        body, sources = split_answer(a)
        meta: dict[str, Any] = {"sources": sources} if sources else {}
        qid = str(row.get("id") or n)
        questions.append(Question(qid, q.strip(), [body] if body else [], [], meta))
    return questions, problems
