"""An OpenAI-compatible ``/v1/embeddings`` endpoint as an embedder (extra ``openai``)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from mograg.embed.base import normalise
from mograg.errors import MogragError
from mograg.http import import_httpx, send_with_retries


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, llama.cpp, Ollama...)."""

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        *,
        dim: int | None = None,
        max_tokens: int = 512,
        batch_size: int = 64,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        """Configure the client; nothing is sent until the first :meth:`embed`.

        Args:
            model: Model name sent in the request.
            base_url: API root, e.g. ``http://localhost:8000/v1``.
            api_key: Bearer token; default from ``MOGRAG_EMBED_API_KEY`` or ``OPENAI_API_KEY``.
            dim: Vector width if known; otherwise learned from the first response.
            max_tokens: Longest input (WordPieces) callers should send.
            batch_size: Texts per request.
            timeout: Seconds per request.
            retries: Extra attempts after a 429/5xx answer, a timeout or a connection error.
            backoff: Base delay in seconds; doubles per attempt (``Retry-After`` wins).

        Raises:
            MissingExtraError: If httpx is not installed.
        """
        httpx = import_httpx("The OpenAI-compatible embedder")
        if batch_size < 1:
            raise MogragError(f"batch_size must be >= 1, got {batch_size}")
        self._httpx = httpx
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/embeddings"
        key = api_key or os.environ.get("MOGRAG_EMBED_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self._api_key = key or None
        self.name = f"openai:{model}"
        self._dim = dim
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, url={self.url!r})"

    @property
    def dim(self) -> int:
        """Vector width (asks the endpoint once if it was not given)."""
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                headers = {"Content-Type": "application/json"}
                if self._api_key:
                    headers["Authorization"] = f"Bearer {self._api_key}"
                self._client = self._httpx.Client(timeout=self.timeout, headers=headers)
            return self._client

    def _retry_delay(self, attempt: int, resp: Any) -> float:
        delay = self.backoff * (2**attempt) * (1 + 0.1 * random.random())
        retry_after = resp.headers.get("Retry-After") if resp is not None else None
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = float(retry_after)
        return min(max(delay, 0.0), 60.0)

    def _request(self, batch: list[str]) -> np.ndarray:
        """POST one batch, retrying transient failures; return normalised vectors."""
        client = self._get_client()
        payload = {"model": self.model, "input": [t if t else " " for t in batch]}
        resp, failure = send_with_retries(
            lambda: client.post(self.url, json=payload), self.retries + 1,
            ok=lambda status: status < 400,
            retryable=lambda status: status == 429 or status >= 500,
            delay=self._retry_delay, httpx=self._httpx,
        )
        if failure is None:
            return self._parse(resp, len(batch))
        if failure.kind == "status":
            status = failure.response.status_code
            if not (status == 429 or status >= 500):
                body = " ".join(failure.response.text.split())[:200]
                raise MogragError(
                    f"embedding request to {self.url} failed: HTTP {status}: {body}"
                )
            problem = f"HTTP {status}"
        elif failure.kind == "timeout":
            problem = f"timed out after {self.timeout:g}s"
        else:
            problem = f"connection failed ({type(failure.error).__name__})"
        raise MogragError(
            f"embedding request to {self.url} failed after {self.retries + 1} attempt(s): {problem}"
        )

    def _parse(self, resp: Any, n: int) -> np.ndarray:
        try:
            data = resp.json()["data"]
            data = sorted(data, key=lambda d: d.get("index", 0))
            vecs = np.array([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise MogragError(
                f"embedding response from {self.url} is not OpenAI-shaped JSON "
                f"({type(exc).__name__})"
            ) from exc
        if vecs.ndim != 2 or vecs.shape[0] != n:
            raise MogragError(
                f"embedding response from {self.url} has {vecs.shape[0]} vectors for {n} inputs"
            )
        if self._dim is not None and vecs.shape[1] != self._dim:
            raise MogragError(
                f"embedding response from {self.url} has width {vecs.shape[1]}, "
                f"expected {self._dim}"
            )
        return normalise(vecs)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches of ``batch_size``; see :class:`Embedder`."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for lo in range(0, len(texts), self.batch_size):
            part = self._request(list(texts[lo : lo + self.batch_size]))
            if self._dim is None:
                self._dim = int(part.shape[1])
            parts.append(part)
        return np.concatenate(parts, axis=0)

