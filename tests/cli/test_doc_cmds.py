"""Names people use: relative ids, list, show, nearest ids, --where (CLI, API, server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clirun import run
from mograg.index.core import Index
from mograg.types import Document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pdf" / "20071229X02007.pdf"
PARA = "Product revenue grew strongly and customers expanded their consumption this quarter."


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    (d / "calls").mkdir()
    for q in ("Q1 2023", "Q2 2023", "Q3 2022"):
        (d / "calls" / f"{q} Acme Call.txt").write_text(
            f"{q} Acme Earnings Call\n\nAcme results for {q}. {PARA}\n\nRevenue was up.",
            encoding="utf-8")
    shutil.copy(FIXTURE, d / "ntsb.pdf")
    return d


@pytest.fixture(scope="module")
def index(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ix = tmp_path_factory.mktemp("ix") / "ix"
    code, _, err = run("index", folder, "--index", ix, "--quiet")
    assert code == 0, err
    return ix


def test_ids_are_relative_and_list_shows_them(index: Path) -> None:
    code, out, err = run("list", "--index", index, "--json")
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)}
    assert sorted(rows) == ["calls/Q1 2023 Acme Call.txt", "calls/Q2 2023 Acme Call.txt",
                            "calls/Q3 2022 Acme Call.txt", "ntsb.pdf"]
    pdf = rows["ntsb.pdf"]
    assert pdf["pages"] == 4 and pdf["title"].startswith("National Transportation")
    assert "Q1 2023" in rows["calls/Q1 2023 Acme Call.txt"]["periods"]
    code, out, _ = run("list", "--index", index)
    assert code == 0 and "ntsb.pdf" in out and "4 of 4 document(s)" in out


def test_show_by_file_name_and_nearest_ids(index: Path) -> None:
    code, out, err = run("show", "Q2 2023 Acme Call.txt", "--index", index)
    assert code == 0, err
    assert out.startswith("calls/Q2 2023 Acme Call.txt") and "Acme results for Q2 2023" in out
    code, _, err = run("show", "Q2 2032 Acme Call.txt", "--index", index)
    assert code != 0
    line = err.strip()
    assert "\n" not in line and "did you mean" in line and "Q2 2023 Acme Call.txt" in line
    code, out, err = run("delete", "calls/Q9 2023 Acme Call.txt", "--index", index)
    assert code == 1 and "did you mean" in err


def test_where_filters_and_still_fills_the_budget(index: Path) -> None:
    args = ("search", "How did product revenue grow?", "--index", index, "--json",
            "--budget", "64")
    code, out, err = run(*args, "--where", "period~2022")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    assert hits and {h["doc_id"] for h in hits} == {"calls/Q3 2022 Acme Call.txt"}
    code, out, _ = run(*args, "--where", "id^ntsb")
    hits = json.loads(out)["hits"]
    assert {h["doc_id"] for h in hits} == {"ntsb.pdf"}
    assert all(1 <= h["page"] <= 4 for h in hits)
    assert sum(h["n_tokens"] for h in hits) > 32  # filled from the allowed document
    code, _, err = run(*args, "--where", "title")
    assert code != 0 and "KEY=VALUE" in err


def test_where_in_the_api(tmp_path: Path) -> None:
    ix = Index.create(tmp_path / "ix")
    ix.add([Document(f"{q}.txt", f"{PARA} ({q})", {"title": f"{q} call", "source": f"{q}.txt"})
            for q in ("Q1 2023", "Q2 2023")])
    res = ix.search("product revenue", budget=64, where=["title=q2 2023 call"])
    assert res.hits and {h.doc_id for h in res.hits} == {"Q2 2023.txt"}
    assert ix.search("product revenue", budget=64, where=["title=nothing"]).hits == []


def test_old_absolute_ids_are_kept_on_reindex(folder: Path, tmp_path: Path) -> None:
    ix = Index.create(tmp_path / "old")
    src = (folder / "ntsb.pdf").as_posix()
    from mograg.text.documents import load_documents

    (doc,), _ = load_documents([folder / "ntsb.pdf"])
    ix.add([Document(src, doc.text, doc.metadata)])  # as an older mograg named it
    code, _, err = run("index", folder / "ntsb.pdf", "--index", tmp_path / "old", "--quiet")
    assert code == 0, err
    assert Index.open(tmp_path / "old").snapshot.doc_ids == [src]
