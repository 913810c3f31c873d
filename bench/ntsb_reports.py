"""NTSB reports (../shared/data/docugami_ntsb_reports, 20 form-style PDFs, no questions):
does the search still find the report a question is about (issue 13's "nothing breaks")?

One question per report, built mechanically from its header fields (no tuning): "What
was the probable cause of the accident of the <Aircraft> at <Location>?" and one naming
its date instead of the aircraft. Measures the share of questions whose budget holds a
hit from that report, and whether a hit holds the report's "Probable Cause" text. Uses
only ``Index.create/add/search``, so any checkout can be measured
(``PYTHONPATH=<checkout>/src``).

    python bench/ntsb_reports.py --index /tmp/ntsb-ix [--budgets 256,512,1024]
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from pathlib import Path

from _output import emit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "docugami_ntsb_reports"
_FIELD = r"{}:\s*(.+?)(?:\s{{2,}}|\s+(?:Accident Number|Registration|Aircraft Damage|Injuries):|$)"


def _field(text: str, name: str) -> str | None:
    m = re.search(_FIELD.format(re.escape(name)), text, re.M)
    return m.group(1).strip() if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", required=True, help="index directory (built if missing)")
    ap.add_argument("--budgets", default="256,512,1024")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"no data at {DATA}; nothing to do", file=sys.stderr)
        return 0
    import mograg
    from mograg.index.core import Index
    from mograg.text.documents import load_documents

    docs, problems = load_documents([DATA / "docs"])
    root = Path(args.index)
    if not (root / "manifest.json").exists():
        if "context" in inspect.signature(Index.create).parameters:
            ix = Index.create(root, context=True)
        else:  # a checkout from before document context
            ix = Index.create(root)
        ix.add(docs)
    ix = Index.open(root)
    questions = []  # (question, doc id, probable-cause sentence start)
    for d in docs:
        where, when = _field(d.text, "Location"), _field(d.text, "Date & Time")
        plane = _field(d.text, "Aircraft")
        cause = re.search(r"probable cause\(s\) of this accident to be:\s*(.{30})", d.text, re.S)
        if not (where and plane and when and cause):
            continue
        date = when.split(",")[0]
        want = " ".join(cause.group(1).split())
        questions.append((f"What was the probable cause of the accident of the {plane} at "
                          f"{where}?", d.id, want))
        questions.append((f"Why did the accident at {where} on {date} happen?", d.id, want))
    result = {"bench": "ntsb_reports", "label": args.label, "mograg": mograg.__file__,
              "context": ix.manifest.get("context"), "documents": ix.snapshot.n_docs,
              "load_problems": len(problems), "questions": len(questions), "budgets": {}}
    for budget in [int(b) for b in args.budgets.split(",")]:
        right, cause_found = 0, 0
        for q, doc_id, want in questions:
            hits = ix.search(q, budget=budget).hits
            right += any(h.doc_id == doc_id for h in hits)
            cause_found += any(h.doc_id == doc_id and want in " ".join(h.text.split())
                               for h in hits)
        result["budgets"][str(budget)] = {"right_report": f"{right}/{len(questions)}",
                                          "probable_cause_found": f"{cause_found}/{len(questions)}"}
    result["loadavg"] = os.getloadavg()
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
