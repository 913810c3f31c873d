"""Compare PDF text extractors on the real PDFs in ../shared/data (issue 13).

pypdf (limits raised), pypdfium2 and pdfplumber: seconds per file, failures, and
simple text-quality signals (characters, lines, words glued together, words split
by stray spaces, lines repeated on >= 3 pages). Also writes the first page of each
file per extractor to bench/results/pdf_extract_samples/ for reading by eye.

    python bench/pdf_extract.py [--out bench/results/pdf_extract.json]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

from _output import emit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FOLDERS = ("docugami_earnings_calls/docs", "docugami_ntsb_reports/docs")
_WORD = re.compile(r"[A-Za-z]+")
_DIGITS = re.compile(r"\d+")


def pypdf_pages(path: Path) -> list[str]:
    import pypdf
    from pypdf import PdfReader

    # the default limits stop real filings (issue 13): raise the element-count ones
    with pypdf.apply_configuration(array_maximum_element_count=10**8,
                                   dictionary_maximum_element_count=10**8):
        reader = PdfReader(str(path))
        return [p.extract_text() or "" for p in reader.pages]


def pdfium_pages(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        out = []
        for page in pdf:
            tp = page.get_textpage()
            out.append(tp.get_text_bounded())
            tp.close()
            page.close()
        return out
    finally:
        pdf.close()


def plumber_pages(path: Path) -> list[str]:
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        return [p.extract_text() or "" for p in pdf.pages]


EXTRACTORS = {"pypdf": pypdf_pages, "pypdfium2": pdfium_pages, "pdfplumber": plumber_pages}


def quality(pages: list[str], vocab: set[str]) -> dict[str, float]:
    """Signals a reader notices: glued words, split words, repeated header lines."""
    text = "\n".join(pages)
    words = _WORD.findall(text)
    long_unknown = sum(1 for w in words if len(w) >= 16 and w.lower() not in vocab)
    lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n") if ln.strip()]
    per_page: Counter[str] = Counter()
    for p in pages:
        seen = {_DIGITS.sub("0", ln.strip()) for ln in p.replace("\r", "\n").split("\n")}
        per_page.update(s for s in seen if s)
    repeated = sum(1 for _, n in per_page.items() if n >= 3)
    singles = sum(1 for w in words if len(w) == 1 and w not in ("a", "A", "I"))
    return {
        "chars": len(text),
        "words": len(words),
        "lines": len(lines),
        "glued_words_per_1k": round(1000 * long_unknown / max(1, len(words)), 2),
        "single_letters_per_1k": round(1000 * singles / max(1, len(words)), 2),
        "repeated_line_kinds": repeated,
        # a ligature such as "fl" the extractor could not map comes out as NUL/U+FFFD
        "lost_glyphs": text.count("\x00") + text.count("\ufffd"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pdf_extract.json"))
    args = ap.parse_args()
    files = sorted(p for f in FOLDERS for p in (DATA / f).glob("*.pdf"))
    if not files:
        print(f"no PDFs under {DATA}; nothing to do", file=sys.stderr)
        return 0
    samples = ROOT / "bench" / "results" / "pdf_extract_samples"
    samples.mkdir(parents=True, exist_ok=True)
    vocab: set[str] = set()
    results: dict[str, dict] = {}
    texts: dict[str, dict[str, list[str]]] = {}
    for name, fn in EXTRACTORS.items():
        per_file = {}
        fails = []
        total = 0.0
        texts[name] = {}
        for path in files:
            t0 = time.perf_counter()
            try:
                pages = fn(path)
            except Exception as e:
                fails.append(f"{path.name}: {type(e).__name__}: {str(e)[:120]}")
                continue
            dt = time.perf_counter() - t0
            total += dt
            texts[name][path.name] = pages
            per_file[path.name] = {"seconds": round(dt, 3), "pages": len(pages)}
            (samples / f"{path.stem[:40]}.{name}.txt").write_text(pages[0] if pages else "")
        results[name] = {"seconds": round(total, 2), "failures": fails, "files": per_file}
    # vocabulary: words every extractor agrees on (a glued word is found by one only)
    common = None
    for name in EXTRACTORS:
        ws = {w.lower() for ps in texts[name].values() for w in _WORD.findall("\n".join(ps))}
        common = ws if common is None else common & ws
    vocab = common or set()
    for name in EXTRACTORS:
        agg: Counter = Counter()
        for pages in texts[name].values():
            q = quality(pages, vocab)
            agg.update({k: v for k, v in q.items() if k in ("chars", "words", "lines",
                                                            "repeated_line_kinds", "lost_glyphs")})
        allq = quality([p for ps in texts[name].values() for p in ps], vocab)
        results[name]["quality"] = {
            **dict(agg),
            "glued_words_per_1k": allq["glued_words_per_1k"],
            "single_letters_per_1k": allq["single_letters_per_1k"],
        }
    out = {
        "bench": "pdf_extract",
        "files": len(files),
        "loadavg": os.getloadavg(),
        "extractors": {k: {kk: vv for kk, vv in v.items() if kk != "files"}
                       for k, v in results.items()},
        "per_file": {k: v["files"] for k, v in results.items()},
    }
    return emit(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
