"""Question/answer files (CSV, JSONL) and answer-based measures, end to end in the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from clirun import run
from mograg.eval.qa import (
    answer_figures,
    cited_sources,
    figure_recall,
    load_qa_file,
    names_source,
    split_answer,
    token_recall,
)
from mograg.text.context import CONTEXT_VERSION

ANSWER = ("Product revenue grew 84% year-on-year to $394 million.\n\n"
          "Source: Q1 2023 Earning Call, pg 2")


def test_answer_sources_and_figures() -> None:
    body, sources = split_answer(ANSWER)
    assert body == "Product revenue grew 84% year-on-year to $394 million."
    assert sources == ["Q1 2023 Earning Call, pg 2"]
    assert answer_figures(body) == {"84", "394"}
    cited = cited_sources(sources)
    assert cited == [frozenset({"q1", "2023"})]
    assert names_source("docs/Q1 2023 Snowflake Inc. Earnings Call.pdf", cited)
    assert not names_source("docs/Q3 2023 Snowflake Inc. Earnings Call.pdf", cited)
    # several quarters of one year in one line are several sources
    many = cited_sources(["Earnings Calls pg1 for Q1, Q2, Q3 2023"])
    assert sorted(map(sorted, many)) == [["2023", "q1"], ["2023", "q2"], ["2023", "q3"]]
    assert split_answer("No lease mentioned.\nSource: N/A")[1] == []


def test_token_and_figure_recall() -> None:
    body, _ = split_answer(ANSWER)
    ctx = "In Q1, product revenue grew 84% year over year to $394.0 million."
    assert figure_recall(ctx, body) == 1.0
    assert figure_recall("revenue of $394,000,000", "revenue 1,350") == 0.0
    assert 0.5 < token_recall(ctx, body) < 1.0
    assert figure_recall(ctx, "no figures here") != figure_recall(ctx, "no figures here")  # NaN


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_load_csv_and_jsonl(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "q.csv", [{"Question": "How much?", "Answer": ANSWER},
                                       {"Question": "", "Answer": "x"}])
    qs, problems = load_qa_file(p)
    assert [q.question for q in qs] == ["How much?"]
    assert qs[0].metadata["sources"] == ["Q1 2023 Earning Call, pg 2"]
    assert len(problems) == 1 and "q.csv:2" in problems[0]
    j = tmp_path / "q.jsonl"
    j.write_text(json.dumps({"question": "How much?", "answer": "84%"}) + "\n")
    qs, _ = load_qa_file(j)
    assert qs[0].answers == ["84%"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    (d / "Q1 2023 Acme Call.txt").write_text(
        "Acme Q1 2023 results. Product revenue grew 84% year-on-year to $394 million.\n\n"
        "Our customers kept growing in Europe.", encoding="utf-8")
    (d / "Q2 2023 Acme Call.txt").write_text(
        "Acme Q2 2023 results. Product revenue grew 83% year-on-year to $466 million.\n\n"
        "We opened an office in Tokyo.", encoding="utf-8")
    ix = tmp_path_factory.mktemp("ix") / "ix"
    code, _, err = run("index", d, "--index", ix, "--quiet")
    assert code == 0, err
    return ix


def test_eval_scores_a_csv(index: Path, tmp_path: Path) -> None:
    q = write_csv(tmp_path / "qa.csv", [
        {"Question": "How much did product revenue grow in Q1 2023?", "Answer": ANSWER},
        {"Question": "Where did Acme open an office?",
         "Answer": "Tokyo.\nSource: Q2 2023 Earnings Call"},
    ])
    code, out, err = run("eval", "--index", index, "--questions", q, "--json")
    assert code == 0, err
    systems = json.loads(out)["systems"]
    best = systems["best_fixed"]
    assert best["right_source"] == 1.0 and best["figure_recall"] == 1.0
    assert best["token_recall"] > 0.5 and best["recall"] is None
    code, out, err = run("eval", "--index", index, "--questions", q)
    assert code == 0 and "fig_rec" in out and "right_src" in out and "IoU" not in out


def test_missing_columns_one_line(index: Path, tmp_path: Path) -> None:
    q = write_csv(tmp_path / "bad.csv", [{"Prompt": "How much?", "Reply": "84%"}])
    code, _, err = run("eval", "--index", index, "--questions", q)
    assert code != 0
    msg = err.strip()
    assert "\n" not in msg and "question and answer columns" in msg and "Prompt, Reply" in msg


def test_report_checks_the_plot_extra_before_any_work(tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were missing
    q = write_csv(tmp_path / "qa.csv", [{"Question": "How much?", "Answer": ANSWER}])
    code, _, err = run("eval", "--docs", tmp_path / "missing.jsonl", "--questions", q,
                       "--report", tmp_path / "rep")
    assert code != 0
    assert "pip install 'mograg[plot]'" in err and "missing.jsonl" not in err


def test_eval_cache_derives_the_context_index_from_the_plain_one(tmp_path: Path,
                                                                 monkeypatch) -> None:
    from mograg.eval.commands import index_docs_cached

    monkeypatch.setenv("MOGRAG_CACHE", str(tmp_path / "cache"))
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"id": f"d{i}", "text": f"Note {i}. " * 20,
                                          "metadata": {"title": f"Note {i}"}})
                              for i in range(3)) + "\n", encoding="utf-8")
    plain = index_docs_cached(docs, "8,16", context=False)
    rich = index_docs_cached(docs, "8,16", context=True)
    assert "context" not in plain.manifest and rich.manifest["context"]
    assert rich.root != plain.root and rich.snapshot.doc_ids == plain.snapshot.doc_ids


def test_eval_cache_is_not_reused_across_sentence_splitters(tmp_path: Path,
                                                           monkeypatch) -> None:
    # another splitter moves chunks: an index cached with it must not be taken for today's
    import mograg.eval.commands as commands

    monkeypatch.setenv("MOGRAG_CACHE", str(tmp_path / "cache"))
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "d", "text": "One. Two."}) + "\n", encoding="utf-8")
    today = commands.index_docs_cached(docs, "8,16")
    assert commands.index_docs_cached(docs, "8,16").root == today.root  # cached
    monkeypatch.setattr(commands, "SPLITTER", "blingfire-0.1.8")
    assert commands.cached_index_dir(docs, (8, 16), "pool") != today.root


def test_index_has_no_context_unless_asked(tmp_path: Path) -> None:
    """Context is opt-in for text (bench/results/transfer-256-context.json: the shipped model
    loses recall with it on the hotpotqa sets)..."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "Q1 2023 Acme Call.txt").write_text("Acme Q1 2023 results. Revenue grew.",
                                             encoding="utf-8")
    for flags, expected in (((), None), (("--context",), CONTEXT_VERSION)):
        ix = tmp_path / f"ix{len(flags)}"
        code, _, err = run("index", d, "--index", ix, "--quiet", *flags)
        assert code == 0, err
        assert json.loads((ix / "manifest.json").read_text()).get("context") == expected


def test_an_index_of_pdfs_gets_context_by_default(tmp_path: Path) -> None:
    """...and on for a new index made of PDFs only, whose running headers are removed."""
    pdf = Path(__file__).resolve().parents[1] / "fixtures" / "pdf" / "20071229X02007.pdf"
    d = tmp_path / "pdfs"
    d.mkdir()
    (d / pdf.name).write_bytes(pdf.read_bytes())
    for flags, expected in (((), CONTEXT_VERSION), (("--no-context",), None)):
        ix = tmp_path / f"ix{len(flags)}"
        code, _, err = run("index", d, "--index", ix, "--quiet", *flags)
        assert code == 0, err
        assert json.loads((ix / "manifest.json").read_text()).get("context") == expected
