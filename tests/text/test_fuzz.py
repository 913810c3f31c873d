"""Fuzz suite (CI-sized; bench/fuzz.py runs the long campaign).

Properties: parsing untrusted JSON only ever refuses with one line; loading a damaged
file never raises and never costs the good file beside it; sentence spans and budgets
hold on adversarial text (long runs, whitespace gaps, CJK, combining marks, emoji).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile
from mograg.index.core import Index
from mograg.text.documents import load_documents
from mograg.text.safejson import JsonValueError, loads_checked
from mograg.text.segment import split_with_counts
from mograg.text.tokens import MAX_TOKEN_CHARS
from mograg.types import Document

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GOOD = "Kingfishers dive for minnows from low branches."


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_loads_checked_refuses_with_one_line_only(data: bytes | str) -> None:
    try:
        loads_checked(data)
    except JsonValueError as e:
        assert "\n" not in str(e) and str(e)


@FUZZ
@given(st.integers(0, 2**32), st.integers(1, 30))
def test_loads_checked_on_mutated_records(seed: int, n: int) -> None:
    rng = random.Random(seed)
    line = hostile.seeds()[".jsonl"].split(b"\n")[0]
    for _ in range(n):
        line = hostile.mutate(line, rng, ".jsonl")[:20000]
        try:
            loads_checked(line)
        except JsonValueError as e:
            assert "\n" not in str(e)


def _check_load(folder: Path) -> None:
    docs, problems = load_documents([folder], max_bytes=2_000_000)
    assert "good.txt" in {d.id for d in docs}  # ids are relative to the folder given
    for p in problems:
        assert "\n" not in p.message and p.path.startswith(folder.as_posix()), p
        assert "report this" not in p.message, p  # the generic guard means a bug


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(hostile.SUFFIXES), st.integers(0, 2**32))
def test_a_mutated_file_never_costs_the_good_one(tmp_path: Path, suffix: str, seed: int) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    data = hostile.mutate(hostile.seeds()[suffix], random.Random(seed), suffix)
    (folder / f"bad{suffix}").write_bytes(data)
    _check_load(folder)


@pytest.mark.parametrize("case", sorted(hostile.named_cases()))
def test_named_hostile_case_is_isolated(tmp_path: Path, case: str) -> None:
    suffix, data = hostile.named_cases()[case]
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / f"bad{suffix}").write_bytes(data)
    _check_load(tmp_path)


ADVERSARIAL = st.lists(
    st.sampled_from(
        ["a", "b", "Z", "7", " ", "\n", "\t", ".", "!", "-", "é", "\u0301", "한", "中",
         "\U0001f600", "\u200b", "a" * 40, "a" * 130, " " * 60, "\n\n", "# ", "- ", "|",
         "word ", "Sentence ends. "]
    ),
    max_size=120,
).map("".join)


@settings(FUZZ, max_examples=150)
@given(ADVERSARIAL, st.sampled_from([1, 2, 8, 32]))
def test_spans_fit_the_cap_in_tokens_and_characters(text: str, cap: int) -> None:
    spans, counts = split_with_counts(text, cap)
    covered = "".join(text[s:e] for s, e in spans)
    assert "".join(covered.split()) == "".join(text.split())
    for (s, e), c in zip(spans, counts, strict=True):
        assert e - s <= MAX_TOKEN_CHARS * c  # a count never hides characters
        assert c <= cap or e - s == 1  # only one character of several WordPieces is atomic


@pytest.fixture(scope="module")
def adversarial_index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    rng = random.Random(17)
    pieces = ["herons ", "a" * 5000, " " * 3000, "\n\n", "한" * 800, "fish. ", "x" * 101,
              "\U0001f600" * 50, "Kingfishers dive. "]
    docs = [Document(f"adv{i}", "".join(rng.choice(pieces) for _ in range(40)))
            for i in range(8)]
    root = tmp_path_factory.mktemp("fuzz") / "ix"
    ix = Index.create(root)
    ix.add(docs)
    return Index.open(root)


@settings(FUZZ, max_examples=40)
@given(st.sampled_from(["herons", "a" * 30, "한국", "fish dive", "x"]),
       st.integers(1, 400), st.sampled_from(["hybrid", "bm25", "dense"]))
def test_budget_bounds_returned_tokens_and_characters(
    adversarial_index: Index, query: str, budget: int, mode: str
) -> None:
    res = adversarial_index.search(query, budget=budget, mode=mode)
    assert sum(h.n_tokens for h in res.hits) <= budget
    assert sum(len(h.text) for h in res.hits) <= 2 * MAX_TOKEN_CHARS * budget
