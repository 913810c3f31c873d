"""Embedding throughput of the default OnnxMiniLM on real SQuAD text.

Prints one JSON object: sentences/s (~28 WordPieces each) and passages/s (~200 each).
``--batch-size 16,32,64,128`` sweeps several batch sizes in one run.

    PYTHONPATH=src python bench/embed_throughput.py [--n 500] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mograg.embed.embedders import DEFAULT_BATCH_SIZE, OnnxMiniLM
from mograg.text.tokens import count_tokens

DOCS = Path(os.environ.get("MOGRAG_SHARED", "/work/shared")) / "evalsets/squad-dev/docs.jsonl.gz"


def load_texts(path: Path, n_sent: int, n_pass: int) -> tuple[list[str], list[str]]:
    """First ``n_sent`` sentences (5..80 pieces) and ``n_pass`` ~200-piece passages."""
    import nupunkt

    sentences: list[str] = []
    passages: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            sents = [t for a, b in nupunkt.sent_spans(text) if (t := text[a:b].strip())]
            lens = count_tokens(sents)
            window: list[str] = []
            size = 0
            for sent, n in zip(sents, lens, strict=True):
                if len(sentences) < n_sent and 5 <= n <= 80:
                    sentences.append(sent)
                if n > 200:
                    continue
                window.append(sent)
                size += n
                if size >= 180:
                    if size <= 230 and len(passages) < n_pass:
                        passages.append(" ".join(window))
                    window, size = [], 0
            if len(sentences) >= n_sent and len(passages) >= n_pass:
                break
    return sentences, passages


def rate(emb: OnnxMiniLM, texts: list[str], repeat: int) -> float:
    """Best-of-``repeat`` texts per second."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        emb.embed(texts)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="sentences (passages: n // 5)")
    ap.add_argument(
        "--batch-size",
        default=str(DEFAULT_BATCH_SIZE),
        help="batch size, or a comma-separated list to sweep",
    )
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per case (best kept)")
    args = ap.parse_args(argv)

    if not DOCS.is_file():
        print(f"skipping: {DOCS} not found")
        return 0
    sizes = [int(b) for b in args.batch_size.split(",") if b.strip()]
    sentences, passages = load_texts(DOCS, args.n, max(1, args.n // 5))
    emb = OnnxMiniLM(batch_size=sizes[0], threads=args.threads)
    emb.embed(sentences[:8])  # create the session outside the timing

    runs: list[dict[str, Any]] = []
    for bs in sizes:
        emb.batch_size = bs
        runs.append(
            {
                "batch_size": bs,
                "sentences_per_s": round(rate(emb, sentences, args.repeat), 1),
                "passages_per_s": round(rate(emb, passages, args.repeat), 1),
            }
        )
    out: dict[str, Any] = {
        "embedder": emb.name,
        "threads": args.threads or os.cpu_count(),
        "n_sentences": len(sentences),
        "mean_sentence_tokens": round(sum(count_tokens(sentences)) / len(sentences), 1),
        "n_passages": len(passages),
        "mean_passage_tokens": round(sum(count_tokens(passages)) / len(passages), 1),
        **(runs[0] if len(runs) == 1 else {"runs": runs}),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
