"""PDF text: running headers/footers removed with exact offsets, pages, headings, titles."""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mograg.text.context import document_context
from mograg.text.documents import load_documents
from mograg.text.pdf import (
    MIN_REPEATS,
    RUNNING_SHARE,
    _join,
    _key,
    page_of,
    pages_text,
    pdf_text,
    remove_repeated_lines,
    structural_labels,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pdf" / "20071229X02007.pdf"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL = sorted(SHARED.glob("docugami_*/docs/*.pdf"))


def edge_repeats(text: str, page_starts: list[int]) -> set[str]:
    """Lines (digits normalised) first or last on >= MIN_REPEATS pages of ``text`` and on
    half of them: running headers/footers."""
    bounds = [*page_starts, len(text)]
    per_page: Counter[str] = Counter()
    for a, b in pairwise(bounds):
        page = [ln for ln in text[a:b].split("\n") if ln.strip()]
        per_page.update({_key(ln) for ln in page[:1] + page[-1:]})
    need = max(MIN_REPEATS, math.ceil(RUNNING_SHARE * len(page_starts)))
    return {k for k, n in per_page.items() if n >= need}


def test_real_report_header_removed_pages_and_title() -> None:
    got = pdf_text(FIXTURE.read_bytes())
    assert len(got.page_starts) == 4
    assert "Page 1 of 4" not in got.text and "Page 3 of 4" not in got.text
    assert got.removed_lines >= 4
    title = "National Transportation Safety Board Aviation Accident Final Report"
    assert got.first_heading == title
    # page starts point at the first character of each page's kept text
    for p, start in enumerate(got.page_starts, start=1):
        assert page_of(got.page_starts, start) == p
        assert not got.text[start].isspace()
    # headings are exact slices holding a short line each
    assert got.headings and all("\n" not in got.text[a:b] for a, b in got.headings)
    assert "Analysis" in [got.text[a:b] for a, b in got.headings]
    # table rows stay separate lines
    assert "\nDefining Event: Injuries: 1 Minor\n" in got.text


def test_loader_records_pages_and_headings() -> None:
    (doc,), problems = load_documents([FIXTURE])
    assert problems == []
    meta = doc.metadata
    assert meta["title"].startswith("National Transportation Safety Board")
    assert meta["pages"] == 4 and len(meta["page_starts"]) == 4
    i = doc.text.index("Probable Cause")
    assert 1 <= page_of(meta["page_starts"], i) <= 4


lines = st.text(alphabet="ab 1", min_size=0, max_size=6)


@given(st.lists(st.lists(lines, max_size=8), max_size=6))
def test_removal_keeps_order_and_only_drops_edge_repeats(pages: list[list[str]]) -> None:
    kept, removed = remove_repeated_lines(pages)
    assert len(kept) == len(pages)
    assert removed == sum(map(len, pages)) - sum(map(len, kept))
    for before, after in zip(pages, kept, strict=True):
        it = iter(before)
        assert all(any(x == y for y in it) for x in after)  # a subsequence


def test_running_lines_on_three_pages_go_interior_repeats_stay() -> None:
    words = [a + b for a in ("al", "bo", "ce", "du") for b in ("pha", "rin", "sto", "mek", "tun")]
    bodies = [[f"{w} met {v} on page {p}." for w in words] for p, v in enumerate(words[:4])]
    pages = [[f"ACME Corp | Q2 2023 Form 10-Q | {p}", *b[:4], "Operator", *b[4:], str(p)]
             for p, b in enumerate(bodies, start=1)]
    kept, removed = remove_repeated_lines(pages)
    assert removed == 8  # the running header and the page number of every page
    assert kept == [[*b[:4], "Operator", *b[4:]] for b in bodies]


def test_a_speaker_opening_a_few_pages_of_a_long_transcript_stays() -> None:
    names = ["Ann Lee", "Bo Chen", "Cy Diaz", "Di Park", "Ed Moss", "Flo Yu", "Gus Kim"]
    words = [a + b for a in ("al", "bo", "ce", "du") for b in ("pha", "rin", "sto", "mek", "tun")]
    pages = [[names[p % 7] if p % 4 else "Operator", f"Words of page {words[p]}.",
              f"More words said on page {words[p]}."] for p in range(20)]
    kept, removed = remove_repeated_lines(pages)
    assert removed == 0 and kept == pages  # "Operator" opens 5 of 20 pages: text


def test_chapter_headers_carrying_page_numbers_go_chapter_headings_stay() -> None:
    # the layout of a GNU manual (libtasn1.pdf): a chapter opens with a bare page number
    # and its heading; its other pages open with "Chapter N: title <page>"; printed
    # numbers lag the page positions by the front matter (2 pages here); a chapter header
    # seen on one page only is not told from a heading "1 Introduction" and stays
    chapters = [("Introduction", 3), ("Utilities", 3), ("Function reference", 5)]
    pages = [["Manual of Things", "for version 1.0"], ["Copyright notice.", "Permission."]]
    expected = [p[:] for p in pages]
    words = iter(["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "kite",
                  "lynx", "mole", "newt", "owl"])
    for c, (title, n) in enumerate(chapters, start=1):
        for k in range(n):
            number = len(pages) - 1  # printed number of the page about to be added
            w = next(words)
            body = [f"Text about the {w} in {title.lower()}.", f"Said by the {w}, 2 times."]
            if k == 0:
                pages.append([str(number), f"{c} {title}", f"{c}.1 First part", *body])
                expected.append([f"{c} {title}", f"{c}.1 First part", *body])
            else:
                pages.append([f"Chapter {c}: {title} {number}", *body])
                expected.append(body)
    kept, removed = remove_repeated_lines(pages)
    assert kept == expected
    # 3 bare page numbers and 8 chapter headers; "1.1 First part" opens 3 pages: text
    assert removed == 11


def test_a_running_header_without_numbers_on_consecutive_pages_goes() -> None:
    pages = [["Appendix A: Licence", f"Clause {w} of the licence.", f"It says {w}."]
             for w in ("one", "two", "three")]
    pages += [["Index", f"entry {w} . . . 4"] for w in ("x", "y")]
    pages += [[f"Summary {w}.", f"It ends with {w}."] for w in ("a", "b", "c", "d", "e")]
    kept, removed = remove_repeated_lines(pages)
    assert removed == 3 and all("Appendix A: Licence" not in p for p in kept)
    assert kept[3][0] == "Index" and kept[5:] == pages[5:]  # 2 pages, 5 scattered: text


@settings(max_examples=60, deadline=None)
@given(n_pages=st.integers(3, 12), offset=st.integers(0, 40), header=st.sampled_from(
    ["ACME Corp | Q2 2023 Form 10-Q | {n}", "{n} | Annual Report 2023", "Page {n}"]),
    words=st.lists(st.text(alphabet="abcdefgh", min_size=3, max_size=8), min_size=40,
                   max_size=40, unique=True))
def test_numbered_furniture_goes_and_every_content_line_stays(
    n_pages: int, offset: int, header: str, words: list[str]
) -> None:
    body = [[f"{words[(2 * p) % 40]} said {words[(2 * p + 1) % 40]} on page {p}.",
             f"Then {words[(3 * p + 5) % 40]} replied."] for p in range(n_pages)]
    pages = [[header.format(n=p + 1 + offset), *b] for p, b in enumerate(body)]
    kept, removed = remove_repeated_lines(pages)
    assert kept == body and removed == n_pages


@pytest.mark.skipif(not REAL, reason="no real PDFs in ../shared/data")
def test_all_real_pdfs_load_without_running_lines() -> None:
    docs, problems = load_documents(REAL)
    assert problems == [] and len(docs) == len(REAL)
    for d in docs:
        assert "\x00" not in d.text
        assert not edge_repeats(d.text, d.metadata["page_starts"]), d.id
    calls = [d for d in docs if "Snowflake" in d.metadata["source"]]
    assert calls and all("Snowflake Inc." in d.text for d in calls)
    for d in docs:  # no line of the stored text is on >= MIN_REPEATS pages
        assert not lines_on_pages(d.text, d.metadata["page_starts"]), d.id
    # a transcript's speakers left the text and say who speaks in the section path
    call = calls[0]
    ctx = document_context(call.text, call.metadata)
    labels = {label for _, label in call.metadata["labels"]}
    assert "Operator" in labels and "Operator" not in call.text.split("\n")
    assert any(ctx.section_at(at) == "Operator" for at, _ in call.metadata["labels"])


def lines_on_pages(text: str, page_starts: list[int]) -> set[str]:
    """Lines (whitespace collapsed) of ``text`` found on >= MIN_REPEATS of its pages."""
    pages: dict[str, set[int]] = {}
    for p, (a, b) in enumerate(pairwise([*page_starts, len(text)])):
        for ln in text[a:b].split("\n"):
            if ln.strip():
                pages.setdefault(" ".join(ln.split()), set()).add(p)
    return {k for k, ps in pages.items() if len(ps) >= MIN_REPEATS}


def test_a_transcripts_speakers_become_labels_of_what_they_say() -> None:
    words = [a + b for a in ("al", "bo", "ce", "du") for b in ("pha", "rin", "sto", "mek", "tun")]
    cfo = "Ann Lee Acme Inc. – CFO"
    said = [f"Thanks from {words[p]}, {n} times." for p in range(4) for n in range(6)]
    pages = [[*said[6 * p:6 * p + 3], "Operator", f"Welcome to the {words[p]} call.", cfo,
              f"Revenue grew {p} percent in {words[p + 5]}.", f"Margins held in {words[p + 9]}.",
              *(["Bo Chen Bank – Analyst", f"What about {words[p + 12]}?"] if p == 1 else []),
              *said[6 * p + 3:6 * p + 6]]
             for p in range(4)]
    got = pages_text(pages)
    assert got.removed_lines == 0  # not furniture: never at a page's edge
    assert "Operator" not in got.text and cfo not in got.text
    assert "Bo Chen Bank – Analyst" in got.text  # on one page only: text
    assert not lines_on_pages(got.text, got.page_starts)
    # each label is recorded at the text it introduces, pages stay exact
    for at, label in got.labels:
        line = got.text[at:].split("\n", 1)[0]
        assert line.startswith("Welcome" if label == "Operator" else "Revenue"), (label, line)
    assert len(got.labels) == 8
    for p, start in enumerate(got.page_starts, start=1):
        assert got.text[start:].startswith("Thanks") and page_of(got.page_starts, start) == p
    # a blank line stands where a speaker changed: the paragraph ends
    assert "Thanks from alrin, 2 times.\n\nWelcome" in got.text
    assert "call.\n\nRevenue grew 1 percent" in got.text
    ctx = document_context(got.text, {"title": "Acme call", "labels": got.labels,
                                      "headings": got.headings})
    assert ctx.section_at(got.text.index("Margins held in botun")) == cfo
    assert ctx.section_at(got.text.index("Welcome to the alsto")) == "Operator"


def test_a_label_under_a_heading_nests_under_it_and_a_page_end_label_carries_on() -> None:
    def fill(p: int, part: str) -> list[str]:  # lines at a page's edges: not furniture
        who = ("Ann", "Bo", "Cy", "Di")[p]
        return [f"{who} said the {part} {k} here." for k in ("one", "two", "three")]

    pages = [[*fill(0, "top"), "Results", "Research Analyst", "Sales rose.", *fill(0, "end")],
             [*fill(1, "top"), "Research Analyst", "Costs fell.", *fill(1, "end"), "Operator"],
             ["Next question, please.", *fill(2, "top"), "Operator", "Go ahead.",
              "Dan Roe Bank, Research Division –", "Research Analyst", "Why did costs fall?",
              *fill(2, "end")],
             [*fill(3, "top"), "Operator", "Thanks all.", *fill(3, "end")]]
    got = pages_text(pages)
    assert got.removed_lines == 0 and not lines_on_pages(got.text, got.page_starts)
    ctx = document_context(got.text, {"labels": got.labels, "headings": got.headings})
    at = got.text.index
    assert ctx.section_at(at("Sales")) == "Results > Research Analyst"
    assert ctx.section_at(at("Ann said the end three")) == "Results > Research Analyst"
    assert ctx.section_at(at("Next question")) == "Operator"  # from the page before
    assert page_of(got.page_starts, at("Next question")) == 3
    assert ctx.section_at(at("Why did")) == "Dan Roe Bank, Research Division – > Research Analyst"
    assert ctx.section_at(at("Thanks all")) == "Operator"


page_lines = st.lists(st.sampled_from(["", " ", "Operator", "CFO Ann", "Rev grew.", "x 1",
                                       "Q?", "  Said it", "Total 12", "Total 13"]), max_size=7)


@settings(max_examples=200, deadline=None)
@given(st.lists(page_lines, max_size=7))
def test_labels_leave_the_text_offsets_and_pages_stay_exact(pages: list[list[str]]) -> None:
    got = pages_text(pages)
    kept, _ = remove_repeated_lines(pages)
    labels = structural_labels(kept)
    if not any(labels):  # nothing repeats: the text is exactly what it was before labels
        assert (got.text, got.page_starts, got.headings) == _join(kept)[:3] and not got.labels
    # every other kept line is in the text, in order, and no label line is
    body = [ln.strip() for lines, marks in zip(kept, labels, strict=True)
            for i, ln in enumerate(lines) if i not in marks and ln.strip()]
    assert [ln.strip() for ln in got.text.split("\n") if ln.strip()] == body
    named = {" ".join(kept[p][i].split()) for p, marks in enumerate(labels) for i in marks}
    assert not named & {" ".join(ln.split()) for ln in got.text.split("\n")}
    assert {label for _, label in got.labels} <= named
    for at, _ in got.labels:  # a label points at the first character of a line of text
        assert 0 <= at < len(got.text) and not got.text[at].isspace()
        assert not got.text[got.text.rfind("\n", 0, at) + 1:at].strip()
    assert got.page_starts == sorted(got.page_starts) and len(got.page_starts) == len(pages)
    for a, b in got.headings:
        assert "\n" not in got.text[a:b] and got.text[a:b].strip()


def test_parallel_parsing_gives_the_same_documents_in_order(tmp_path: Path) -> None:
    for name in ("b.pdf", "a.pdf", "c.pdf"):
        (tmp_path / name).write_bytes(FIXTURE.read_bytes())
    (tmp_path / "notes.txt").write_text("Plain notes.", encoding="utf-8")
    from mograg.text.documents import iter_documents

    seen: list[tuple[str, int, int]] = []
    problems: list = []
    par = list(iter_documents([tmp_path, tmp_path / "missing.pdf"], problems, workers=2,
                              progress=lambda name, n, total: seen.append((name, n, total))))
    seq, _ = load_documents([tmp_path])
    assert [(d.id, d.text, d.metadata) for d in par] == [(d.id, d.text, d.metadata) for d in seq]
    assert [d.id.rsplit("/", 1)[-1] for d in par] == ["a.pdf", "b.pdf", "c.pdf", "notes.txt"]
    assert [n for _, n, _ in seen] == [1, 2, 3, 4] and {t for *_, t in seen} == {5}
    assert [p.message for p in problems] == ["no such file or directory"]


def test_index_reports_time_with_loading(tmp_path: Path) -> None:
    from clirun import run

    code, out, err = run("index", FIXTURE, "--index", tmp_path / "ix", "--quiet")
    assert code == 0, err
    assert "(loading " in out


def test_a_pdf_hit_names_its_section_in_json_and_on_screen(tmp_path: Path) -> None:
    import json

    from clirun import run

    code, _, err = run("index", FIXTURE, "--index", tmp_path / "ix", "--quiet")
    assert code == 0, err
    code, out, err = run("search", "What was the probable cause?", "--index", tmp_path / "ix",
                         "--budget", "128", "--json")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    got = pdf_text(FIXTURE.read_bytes())
    headings = {got.text[a:b] for a, b in got.headings}
    assert any(h.get("section") for h in hits)
    assert all(h["section"] in headings for h in hits if "section" in h)
    code, out, err = run("search", "What was the probable cause?", "--index", tmp_path / "ix",
                         "--budget", "128")
    assert code == 0 and "§ " in out, err


def test_mutated_and_truncated_pdfs_load_or_say_why_in_one_line(tmp_path: Path) -> None:
    import random

    rng = random.Random(13)
    data = FIXTURE.read_bytes()
    for n in range(40):
        b = bytearray(data[: rng.randrange(1, len(data))] if n % 3 == 0 else data)
        for _ in range(rng.randrange(1, 40) if n % 3 else 0):
            b[rng.randrange(len(b))] = rng.randrange(256)
        p = tmp_path / f"m{n}.pdf"
        p.write_bytes(bytes(b))
        docs, problems = load_documents([p])
        assert len(docs) + len(problems) == 1
        for pr in problems:
            assert pr.message.startswith("cannot read PDF: ") and "\n" not in pr.message
