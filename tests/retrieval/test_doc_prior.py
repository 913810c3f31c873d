"""The document level: which documents a question names, by name words and by period."""

from __future__ import annotations

import numpy as np
import pytest

from mograg.index.core import Index
from mograg.retrieval.doc_prior import MENTIONED, prior_of
from mograg.retrieval.rank import make_query
from mograg.store.lexical import tokenize
from mograg.types import Document

# the same paragraph in every call: only the document level can tell them apart
PARA = "Product revenue grew strongly and customers expanded their consumption of the platform."
CALLS = [  # (file name, title, first-page date, a period mentioned in the text)
    ("Q4 2022 Acme Earnings Call.pdf", "Q4 2022 Acme Inc. Earnings Call", "Mar 3, 2022",
     "For fiscal 2023 we expect growth."),
    ("Q1 2023 Acme Earnings Call.pdf", "Q1 2023 Acme Inc. Earnings Call", "May 26, 2022", ""),
    ("Q2 2023 Acme Earnings Call.pdf", "Q2 2023 Acme Inc. Earnings Call", "Sep 8, 2022", ""),
    ("Globex call.pdf", "Globex FY23 Third Quarter Earnings Conference Call", "April 25, 2023", ""),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    docs = [Document(name, f"SAN MATEO {date} -- Edited transcript.\n\n{PARA} {extra}",
                     {"title": title, "source": name}) for name, title, date, extra in CALLS]
    ix = Index.create(tmp_path_factory.mktemp("prior") / "ix", levels=[16, 32], context=True)
    ix.add(docs)
    return ix


def _weights(ix: Index, question: str) -> dict[str, float] | None:
    prior = prior_of(ix.snapshot)
    assert prior is not None
    q = make_query(question, np.zeros(ix.snapshot.dim, np.float32))
    assert q.terms == tokenize([question])[0]
    w = prior.named_weights(q)
    if w is None:
        return None
    return {ix.snapshot.doc_ids[d].split(" Acme")[0].split(" call")[0]: round(float(x), 3)
            for d, x in enumerate(w)}


def test_a_named_quarter_whatever_its_wording(index: Index) -> None:
    for q in ("Q2 2023", "Q2 FY23", "the second quarter of fiscal 2023", "Q2 Fiscal 2023"):
        w = _weights(index, f"How did product revenue grow in {q}?")
        assert w is not None and max(w, key=w.get) == "Q2 2023", (q, w)
        assert w["Q1 2023"] == 0 and w["Q4 2022"] == 0


def test_a_fiscal_year_matches_its_quarters_and_the_calls_that_only_mention_it(
    index: Index,
) -> None:
    w = _weights(index, "What did product revenue do in fiscal year 2023?")
    assert w == {"Q4 2022": MENTIONED, "Q1 2023": 1.0, "Q2 2023": 1.0, "Globex": 1.0}


def test_only_periods_and_dates_name_documents(index: Index) -> None:
    # a company's name is left to the content vote (its title words are in every chunk's
    # context line): no naming vote without a period
    assert _weights(index, "What did Acme say about consumption?") is None
    assert _weights(index, "How did product revenue grow?") is None
    # "Globex FY23 Third Quarter ...": the year-first wording of a quarter
    w = _weights(index, "Globex revenue in Q3 2023?")
    assert w is not None and w.pop("Globex") == 1.0 and max(w.values()) == 0


def test_most_recent_prefers_the_latest_of_the_named_documents(index: Index) -> None:
    w = _weights(index, "How fast is Acme revenue growing? Use the most recent call.")
    assert w == {"Q4 2022": MENTIONED, "Q1 2023": MENTIONED, "Q2 2023": 1.0, "Globex": 0.0}


def test_search_returns_the_named_quarters_copy_of_a_shared_paragraph(index: Index) -> None:
    texts = {d: index.snapshot.text(i) for i, d in enumerate(index.snapshot.doc_ids)}
    for q, want in (("second quarter of fiscal 2023", "Q2 2023"), ("Q4 FY22", "Q4 2022")):
        hits = index.search(f"How did product revenue grow in the {q}?", budget=24).hits
        assert hits and hits[0].doc_id.startswith(want), (q, [h.doc_id for h in hits])
        assert all(h.text == texts[h.doc_id][h.start:h.end] for h in hits)


def test_content_votes_by_document_rank_and_adds_to_naming(index: Index) -> None:
    prior = prior_of(index.snapshot)
    assert prior is not None
    q = make_query("Which call expects growth for fiscal 2023?", np.zeros(8, np.float32))
    content = prior.content_weights(q)
    # only the Q4 2022 call says "expect" (all say "call", in their titles): it ranks first
    # and votes 1, the others vote less; a query no document has gets no vote
    assert content is not None
    names = [d.split(" Acme")[0] for d in index.snapshot.doc_ids]
    assert names[int(np.argmax(content))] == "Q4 2022" and content.max() == 1.0
    assert prior.content_weights(make_query("zebra", np.zeros(8, np.float32))) is None
    both = prior.doc_weights(q)
    named = prior.named_weights(q)
    assert both is not None and named is not None
    assert np.allclose(both, named + content)


def test_a_named_date_matches_the_documents_of_that_date(index: Index) -> None:
    w = _weights(index, "What was said on the call of September 8, 2022?")
    assert w == {"Q4 2022": 0.0, "Q1 2023": 0.0, "Q2 2023": 1.0, "Globex": 0.0}
