"""Earnings calls: every question whose budget holds no hit from the call its answer cites,
with the document votes (period + content) and every hit (issue 13 miss analysis).

    python bench/earnings_calls_misses.py --index IX [--budget 256] [--all]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "docugami_earnings_calls"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", required=True)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--all", action="store_true", help="also the questions that hit")
    args = ap.parse_args()
    from mograg.index.core import Index
    from mograg.retrieval.doc_prior import prior_of
    from mograg.store.lexical import tokenize

    spec = importlib.util.spec_from_file_location("_qa", ROOT / "src" / "mograg" / "eval" / "qa.py")
    qa = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(qa)  # type: ignore[union-attr]
    ix = Index.open(args.index)
    with open(DATA / "qna_data.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    misses = 0
    for i, r in enumerate(rows):
        _, sources = qa.split_answer(r["Answer"])
        cited = qa.cited_sources(sources)
        if not cited:
            continue
        res = ix.search(r["Question"], budget=args.budget)
        ok = any(qa.names_source(h.doc_id, cited) for h in res.hits)
        misses += not ok
        if ok and not args.all:
            continue
        print(f"\n=== {i} {'hit' if ok else 'MISS'}: {r['Question']!r} cites "
              f"{[sorted(c) for c in cited]}")
        prior = prior_of(ix.snapshot)
        if prior is not None:
            q = SimpleNamespace(text=r["Question"], terms=tokenize([r["Question"]])[0])
            w = prior.doc_weights(q)
            if w is not None:
                print("   votes:", {ix.snapshot.doc_ids[d][:8]: round(float(x), 2)
                                    for d, x in enumerate(w) if x > 0})
        for h in res.hits:
            print(f"   {h.doc_id[:8]} L{h.level} {h.n_tokens}t p{h.page} {h.text[:100]!r}")
    print(f"\n{misses} miss(es) at budget {args.budget}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
