"""Document context: titles that are codes, periods, section paths; hits stay exact slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mograg.index.core import Index
from mograg.text.context import (
    chunk_context,
    document_context,
    find_periods,
    looks_like_code,
    with_context,
)
from mograg.types import Document


def test_codes_are_not_titles() -> None:
    for code in ("0000320193-23-000064", "20080102X00002", "doc1.docx",
                 "Microsoft Word - report.doc", "untitled"):
        assert looks_like_code(code), code
    for title in ("Q1 2023 Snowflake Inc. Earnings Call", "Apple", "Aviation Accident Report"):
        assert not looks_like_code(title), title


def test_periods_title_first_then_most_mentioned_then_date() -> None:
    text = ("SAN MATEO May 26, 2022 -- our results for the first quarter of fiscal 2023. "
            "Q1 revenue grew. In Q1 FY2023 we added customers; Q1 FY2023 was strong. "
            "For the quarter ended April 30, 2022 we report.")
    got = find_periods(text, title="Q1 2023 Acme Earnings Call")
    assert got[0] == "Q1 2023"
    assert "Q1 FY2023" in got and "May 26, 2022" in got
    assert find_periods("No dates here at all.") == []


def test_markdown_section_paths_and_recorded_headings() -> None:
    text = "# Guide\n\nIntro.\n\n## Install\n\nRun it.\n\n### Linux\n\nApt.\n\n## Use\n\nGo."
    ctx = document_context(text, {"title": "guide", "source": "docs/guide.md"})
    assert ctx.section_at(text.index("Apt")) == "Guide > Install > Linux"
    assert ctx.section_at(text.index("Go.")) == "Guide > Use"
    pdf_like = "Presentation\nOperator\nWelcome all.\nAnalysis\nThe pilot landed."
    a = pdf_like.index("Analysis")
    meta = {"title": "20080102X00002", "headings": [[a, a + 8], [999, 1005]]}
    ctx = document_context(pdf_like, meta)
    assert ctx.title == ""  # a code is no title
    assert chunk_context(ctx, pdf_like.index("The pilot")) == "Analysis"
    assert chunk_context(ctx, 0) == ""


def test_with_context_prefixes_only_indexed_text() -> None:
    docs = ["# Otters\n\nThey swim.", "Plain text, no heading."]
    metas = [{"title": "Otters"}, {"title": "notes"}]
    got = with_context(["They swim.", "Plain text"], [0, 1], [10, 0],
                       lambda d: docs[d], lambda d: metas[d])
    assert got == ["Otters\nThey swim.", "notes\nPlain text"]


def test_context_index_hits_are_exact_slices_and_old_indexes_keep_working(
    tmp_path: Path,
) -> None:
    quarters = ["Q1 2023", "Q2 2023", "Q3 2023"]
    para = "Product revenue grew strongly and customers expanded their consumption."
    docs = [Document(f"{q} Acme Call.txt", f"Acme results.\n\n{para} We thank our team.",
                     {"title": f"{q} Acme Earnings Call", "source": f"{q} Acme Call.txt"})
            for q in quarters]
    with_ctx = Index.create(tmp_path / "ctx", context=True)
    with_ctx.add(docs)
    without = Index.create(tmp_path / "plain", context=False)
    without.add(docs)
    assert with_ctx.manifest["context"] and "context" not in without.manifest
    for ix in (with_ctx, without):
        res = ix.search("How did product revenue grow in Q2 2023?", budget=64)
        assert res.hits
        texts = {d.id: d.text for d in docs}
        for h in res.hits:
            assert h.text == texts[h.doc_id][h.start:h.end]
    # the context (title with the quarter) picks the right quarter's copy of the paragraph
    top = with_ctx.search("How did product revenue grow in Q2 2023?", budget=64).hits[0]
    assert top.doc_id.startswith("Q2 2023")
    # reopened: the setting is read from the manifest
    assert Index.open(tmp_path / "plain").search("revenue", budget=32).hits


def test_only_a_line_naming_a_section_moves_a_chunks_vector(tmp_path: Path) -> None:
    # a title alone is the same for every chunk of its document: BM25 counts it and the
    # document prior votes with it, but it does not shift the document's vectors (that
    # cost chroma-dev and hotpotqa with the graph up to 2 points); a section does
    docs = [Document("otters.txt", "Otters live in rivers. They swim well and eat fish.",
                     {"title": "Otters of Europe"}),
            Document("guide.md", "# Rivers\n\nWater flows downhill to the sea.",
                     {"title": "River guide"})]
    ctx = Index.create(tmp_path / "ctx", levels=[8, 16], context=True)
    ctx.add(docs)
    plain = Index.create(tmp_path / "plain", levels=[8, 16], context=False)
    plain.add(docs)
    a, b = ctx.snapshot, plain.snapshot
    texts = b.level_texts(0)
    assert a.level_texts(0) == texts
    va, vb = (np.concatenate([np.asarray(v, np.float32) for v in s.vectors[0]]) for s in (a, b))
    lines = a.indexed_texts(0)
    for i, text in enumerate(texts):
        assert lines[i].endswith(text) and lines[i] != text  # every chunk BM25-counts its line
        if "Water" in text:  # under the heading "Rivers"
            assert not np.allclose(va[i], vb[i], atol=1e-4), text
        elif "Otters" in text or "swim" in text:
            assert np.allclose(va[i], vb[i], atol=1e-5), text
    assert any("Water" in t for t in texts) and any("swim" in t for t in texts)


def test_adding_context_to_an_old_index_equals_building_with_it(tmp_path: Path) -> None:
    from mograg.index.migrate import add_context

    docs = [Document(f"{q}.md", f"# {q} Acme Call\n\n## Results\n\nRevenue grew in {q}. "
                     "Customers expanded their consumption.\n\n## Outlook\n\nWe expect more.",
                     {"title": f"{q} Acme Call", "source": f"{q}.md"})
            for q in ("Q1 2023", "Q2 2023", "Q3 2022")]
    fresh = Index.create(tmp_path / "fresh", levels=[8, 16, 32], context=True)
    fresh.add(docs)
    old = Index.create(tmp_path / "old", levels=[8, 16, 32], context=False)
    old.add(docs[:2])
    old.add(docs[2:])  # two segments
    moved = add_context(tmp_path / "old")
    assert moved.manifest["context"] == fresh.manifest["context"]
    a, b = fresh.snapshot, moved.snapshot
    assert a.doc_ids == b.doc_ids
    for j in range(3):
        va = np.concatenate([np.asarray(v, np.float32) for v in a.vectors[j]])
        vb = np.concatenate([np.asarray(v, np.float32) for v in b.vectors[j]])
        assert np.allclose(va, vb, atol=1e-5)
    for q in ("How did revenue grow in Q2 2023?", "outlook"):
        assert fresh.search(q, budget=24).to_dict() == moved.search(q, budget=24).to_dict()


def test_a_hit_says_which_recorded_section_and_label_it_is_in(tmp_path: Path) -> None:
    text = ("Presentation\nWelcome to the call.\n\nRevenue grew 40 percent to 500 million.\n\n"
            "Which regions grew fastest?")
    meta = {"title": "Acme call", "source": "call.pdf", "headings": [[0, 12]],
            "labels": [[13, "Operator"], [text.index("Revenue"), "Ann Lee – CFO"],
                       [text.index("Which"), "Bo Chen – Analyst"]]}
    ctx = document_context(text, meta)
    assert ctx.section_at(text.index("Welcome")) == "Presentation > Operator"
    assert ctx.section_at(text.index("Revenue")) == "Ann Lee – CFO"
    assert chunk_context(ctx, text.index("Which")) == "Acme call | Bo Chen – Analyst"
    topics = ["cloud storage pricing", "hiring engineers in Europe", "the new data center",
              "customer churn in retail", "partner marketplace growth", "currency headwinds"]
    speakers = ["Ann Lee – CFO", "Bo Chen – Analyst", "Cy Diaz – CEO"]
    text, labels = "", []
    for i, topic in enumerate(topics):
        labels.append([len(text), speakers[i % 3]])
        text += f"We discussed {topic} with the board today. It matters for our plans.\n\n"
    ix = Index.create(tmp_path / "ix", context=True)
    ix.add([Document("call.pdf", text, {"title": "Acme call", "labels": labels})])
    hits = ix.search("What about the new data center?", budget=64).hits
    assert any("data center" in h.text for h in hits)
    for h in hits:  # the speaker of the text a hit starts in
        assert h.text == text[h.start:h.end]
        said_by = [name for at, name in labels if at <= h.start][-1]
        assert h.section == said_by and h.to_dict()["section"] == said_by
    plain = Index.create(tmp_path / "plain")
    plain.add([Document("notes.txt", "Revenue grew 40 percent.", {"title": "notes"})])
    hit = plain.search("revenue", budget=16).hits[0]
    assert hit.section is None and "section" not in hit.to_dict()
