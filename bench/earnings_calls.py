"""Earnings calls (../shared/data/docugami_earnings_calls): answer-token recall, figure
recall and right-source rate of the default search at several budgets (issue 13).

Uses only ``Index.create/add/search`` and ``Hit`` fields, so the same script measures
any mograg checkout (``PYTHONPATH=<checkout>/src``); the scoring is this branch's
``mograg/eval/qa.py``, loaded by path. Index build time includes PDF loading.

    python bench/earnings_calls.py --index /tmp/ec-ix [--no-context] [--budgets 256,512,1024]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import inspect
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

from _output import emit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "docugami_earnings_calls"


def _qa():
    spec = importlib.util.spec_from_file_location("_qa", ROOT / "src" / "mograg" / "eval" / "qa.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _repeated_lines(ix) -> dict[str, set[str]]:
    """Per document, the lines (whitespace collapsed, digits as 0) of its PDF found on
    >= 3 pages, read from the PDF itself (pypdfium2, every line of every page: what a
    reader sees, not what mograg kept), so lines mograg moved out of the text still count.
    Falls back to the stored text's pages when the source is not a PDF at hand."""
    import pypdfium2 as pdfium

    out: dict[str, set[str]] = {}
    snap = ix.snapshot
    for d, doc_id in enumerate(snap.doc_ids):
        meta = snap.metadata(d)
        source = Path(str(meta.get("source") or ""))
        if not source.is_file():
            source = DATA / "docs" / Path(doc_id).name
        if source.suffix.lower() == ".pdf" and source.is_file():
            pdf = pdfium.PdfDocument(source.read_bytes())
            page_texts = []
            for i in range(len(pdf)):
                tp = pdf[i].get_textpage()
                page_texts.append(tp.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n"))
                tp.close()
            pdf.close()
        else:
            text = snap.text(d)
            starts = list(meta.get("page_starts") or [0])
            page_texts = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
        pages: dict[str, set[int]] = {}
        for p, page in enumerate(page_texts):
            for ln in page.split("\n"):
                if ln.strip():
                    pages.setdefault(_line_key(ln), set()).add(p)
        out[doc_id] = {k for k, ps in pages.items() if len(ps) >= 3}
    return out


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "0", " ".join(line.split())).lower()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", required=True, help="index directory (built if missing)")
    ap.add_argument("--budgets", default="256,512,1024")
    ap.add_argument("--no-context", action="store_true")
    ap.add_argument("--router", default=None, help="e.g. level:64 (default: the index's)")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"no data at {DATA}; nothing to do", file=sys.stderr)
        return 0
    import mograg
    try:
        from mograg.index.core import Index
        from mograg.text.documents import load_documents
    except ImportError:  # a checkout from before the sub-packages (issue 12)
        load_documents = importlib.import_module("mograg.documents").load_documents
        Index = importlib.import_module("mograg.index").Index  # type: ignore[misc]

    qa = _qa()
    root = Path(args.index)
    build_s = None
    if not (root / "manifest.json").exists():
        t0 = time.perf_counter()
        docs, problems = load_documents([DATA / "docs"])
        if "context" in inspect.signature(Index.create).parameters:
            ix = Index.create(root, context=not args.no_context)
        else:
            ix = Index.create(root)
        ix.add(docs)
        build_s = round(time.perf_counter() - t0, 1)
        if problems:
            print(f"{len(problems)} load problem(s): {problems[0]}", file=sys.stderr)
    ix = Index.open(root)
    with open(DATA / "qna_data.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    result = {"bench": "earnings_calls", "label": args.label, "router": args.router,
              "mograg": mograg.__file__,
              "context": ix.manifest.get("context"), "documents": ix.snapshot.n_docs,
              "build_seconds_with_loading": build_s, "questions": len(rows), "budgets": {}}
    try:
        repeated = _repeated_lines(ix)
    except AttributeError:  # a checkout without page starts or this snapshot API
        repeated = None
    for budget in [int(b) for b in args.budgets.split(",")]:
        tok, fig_all, fig_any, fig_mean, fig_n, src_hit, src_n, used = [], 0, 0, 0.0, 0, 0, 0, []
        tok_shown: list[float] = []  # with each hit's section (speaker) shown above it
        spans, spans_repeating = 0, 0
        lines_repeating: Counter[str] = Counter()
        for r in rows:
            body, sources = qa.split_answer(r["Answer"])
            res = ix.search(r["Question"], budget=budget, router=args.router)
            ctx = "\n".join(h.text for h in res.hits)
            used.append(sum(h.n_tokens for h in res.hits))
            for h in res.hits:
                if repeated is None:
                    break
                spans += 1
                found = {_line_key(ln) for ln in h.text.split("\n")} & repeated[h.doc_id]
                spans_repeating += bool(found)
                lines_repeating.update(found)
            t = qa.token_recall(ctx, body)
            if t == t:
                tok.append(t)
            shown = "\n".join(f"{h.section}\n{h.text}" if getattr(h, "section", None)
                              else h.text for h in res.hits)
            t = qa.token_recall(shown, body)
            if t == t:
                tok_shown.append(t)
            if qa.answer_figures(body):
                fig_n += 1
                share = qa.figure_recall(ctx, body)
                fig_all += share == 1.0
                fig_any += share > 0
                fig_mean += share
            cited = qa.cited_sources(sources)
            if cited:
                src_n += 1
                src_hit += any(qa.names_source(h.doc_id, cited) for h in res.hits)
        result["budgets"][str(budget)] = {
            "token_recall": round(sum(tok) / len(tok), 3),
            "token_recall_with_sections": round(sum(tok_shown) / len(tok_shown), 3),
            "figures_all_found": f"{fig_all}/{fig_n}",
            "figures_any_found": f"{fig_any}/{fig_n}",
            "figure_recall": round(fig_mean / max(fig_n, 1), 3),
            "right_source": f"{src_hit}/{src_n}",
            "mean_tokens_used": round(sum(used) / len(used), 1),
        }
        if repeated is not None:  # issue 13: lines repeating on >= 3 pages inside spans
            result["budgets"][str(budget)]["spans_with_a_line_on_3_pages"] = (
                f"{spans_repeating}/{spans}")
            result["budgets"][str(budget)]["lines_on_3_pages_in_spans"] = dict(
                lines_repeating.most_common(12))
    result["loadavg"] = os.getloadavg()
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
