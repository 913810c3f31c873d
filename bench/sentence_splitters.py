"""Sentence splitters compared with blingfire (99 MB installed; mograg used it until nupunkt
replaced it, see /work/notes/issue-16-install.md): agreement and speed.

For 40 random documents of each dev set (first 20k characters each), compares the sentence
end offsets of pysbd, nupunkt (what mograg uses now) and sentencex with blingfire's and
times each. Boundary F1 below 1 means different chunks, hence different retrieval results:
a switch needs the full dev-set evaluation (bench/transfer.py), not just this.
Needs: pip install blingfire pysbd sentencex   Usage: python bench/sentence_splitters.py [--out F]
"""

from __future__ import annotations

import argparse
import ctypes
import gzip
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import blingfire
import numpy as np

from _output import emit

EVALSETS = Path(__file__).resolve().parents[2] / "shared" / "evalsets"
SETS = ["chroma-dev", "squad-dev", "hotpotqa-dev", "musique-train", "clapnq-dev", "medquad-dev"]


def _blingfire_ends(text: str) -> list[int] | None:
    """Character end offsets of BlingFire's sentences, or None if BlingFire failed.

    Calls the C function directly (the Python wrapper maps UTF-8 offsets back to
    characters with a per-byte Python loop, which is slow on large texts).
    """
    # NUL would be an early end-of-string for C code; any 1-byte stand-in keeps offsets.
    data = text.replace("\x00", " ").encode("utf-8", errors="surrogatepass")
    n = len(data)
    if n == 0:
        return []
    cap = n * 2 + 16
    out = ctypes.create_string_buffer(cap)
    starts = (ctypes.c_int32 * cap)()
    ends = (ctypes.c_int32 * cap)()
    rc = blingfire.blingfire.TextToSentencesWithOffsets(
        ctypes.c_char_p(data),
        ctypes.c_int(n),
        ctypes.byref(out),
        ctypes.byref(starts),
        ctypes.byref(ends),
        ctypes.c_int(cap),
    )
    if rc <= 0 or rc > cap:
        return None
    n_sent = out.value.count(b"\n") + 1
    byte_ends = np.frombuffer(memoryview(ends), dtype=np.int32, count=n_sent).astype(np.int64)
    if byte_ends.size == 0 or byte_ends.min() < 0 or byte_ends.max() >= n:
        return None
    # End offsets are inclusive byte positions; map byte -> index of its character.
    raw = np.frombuffer(data, dtype=np.uint8)
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1
    return (char_of_byte[byte_ends] + 1).tolist()


def _ends_from_strings(text: str, sents: object) -> list[int]:
    out, pos = [], 0
    for s in sents:  # type: ignore[attr-defined]
        s2 = s.strip()
        i = text.find(s2, pos) if s2 else -1
        if i >= 0:
            pos = i + len(s2)
            out.append(pos)
    return out


def _candidates() -> dict[str, Callable[[str], list[int]]]:
    import nupunkt
    import pysbd
    import sentencex

    seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return {
        "pysbd": lambda t: [s.end for s in seg.segment(t)],
        "nupunkt": lambda t: [e for _, e in nupunkt.sent_spans(t)],
        "sentencex": lambda t: _ends_from_strings(t, sentencex.segment("en", t)),
    }


def _norm(text: str, ends: list[int]) -> set[int]:
    return {len(text[:e].rstrip()) for e in ends if text[:e].strip()}


def main() -> int:
    """Compare the splitters on every dev set."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cands = _candidates()
    random.seed(0)
    rows = {}
    for name in SETS:
        with gzip.open(EVALSETS / name / "docs.jsonl.gz", "rt", encoding="utf-8") as f:
            docs = [json.loads(line) for line in f]
        texts = [d["text"][:20000] for d in random.sample(docs, min(40, len(docs)))]
        chars = sum(map(len, texts))
        t0 = time.perf_counter()
        ref = [_norm(t, _blingfire_ends(t) or []) for t in texts]
        dt = time.perf_counter() - t0
        row: dict[str, object] = {"chars": chars, "blingfire_chars_per_s": round(chars / dt)}
        for c, fn in cands.items():
            t0 = time.perf_counter()
            got = [_norm(t, fn(t)) for t in texts]
            dt = time.perf_counter() - t0
            tp = sum(len(a & b) for a, b in zip(ref, got, strict=True))
            p, r = tp / max(1, sum(map(len, got))), tp / max(1, sum(map(len, ref)))
            row[c] = {"boundary_f1": round(2 * p * r / max(p + r, 1e-9), 3),
                      "chars_per_s": round(chars / dt)}
        rows[name] = row
    return emit({"bench": "sentence_splitters", "loadavg": os.getloadavg(), "sets": rows},
                args.out)


if __name__ == "__main__":
    raise SystemExit(main())
