"""The shipped granularity model: per-query recall of every granularity, from features
that transfer (:mod:`mograg.signals`), trained on many corpora pooled.

It predicts how much of the evidence each granularity would put into the budget and
turns the predictions into blend weights (``softmax(pred / temperature)``). Fitting is
a set-weighted ridge regression (every training corpus counts the same, however many
questions it has), closed form and deterministic. Stored as ``.npz`` (arrays + a JSON
header, no pickle), shipped in the package and loaded offline.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.errors import MogragError
from mograg.graph.walk import graph_radii
from mograg.retrieval.pooled import package_data, pooled_ridge
from mograg.retrieval.signals import (
    FEATURE_VERSION,
    graph_context,
    named_doc_count,
    transfer_features,
)
from mograg.retrieval.spans import SpanModel, span_model_for
from mograg.types import Granularity

if TYPE_CHECKING:
    from mograg.retrieval.view import IndexView
    from mograg.types import LevelRanking, Query

MODEL_VERSION = 1
SHIPPED_FILE = f"granularity-model-v{MODEL_VERSION}.npz"
DEFAULT_NAME = f"shipped-v{MODEL_VERSION}"


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class GranularityModel:
    """A linear recall model over standardised transferable features."""

    names: list[str]
    levels: list[int]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (features, granularities)
    intercept: np.ndarray  # (granularities,)
    temperature: float = 0.05
    clip: float = 3.0  # standardised features are clipped: a new corpus must not extrapolate
    version: int = MODEL_VERSION
    meta: dict[str, Any] = field(default_factory=dict)
    # added to the intercept in proportion to a query's share of each knowledge source
    # (rows: ``sources``; empty: none) — what `mograg tune` learns on an index of several
    source_intercept: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sources: tuple[str, ...] = ()

    def predict(self, x: np.ndarray, shares: np.ndarray | None = None) -> np.ndarray:
        """Predicted score of every granularity for feature rows ``x`` (``shares``: each
        row's share of each of :attr:`sources`, when the model has per-source intercepts)."""
        z = np.clip((np.atleast_2d(x) - self.mean) / self.scale, -self.clip, self.clip)
        pred = z @ self.coef + self.intercept
        if shares is not None and self.source_intercept.size:
            pred = pred + np.atleast_2d(shares) @ self.source_intercept
        return pred

    def weights_for(self, x: np.ndarray, names: Sequence[str] | None = None,
                    shares: np.ndarray | None = None) -> np.ndarray:
        """Blend weights (rows sum to 1) over ``names`` (default all the model knows)."""
        pred = self.predict(x, shares)
        if names is not None:
            pred = pred[:, [self.names.index(n) for n in names]]
        return _softmax(pred / self.temperature)

    def covers(self, names: Sequence[str], levels: Sequence[int]) -> bool:
        """True when the model knows every one of ``names`` for these levels."""
        return list(levels) == self.levels and all(n in self.names for n in names)

    # --------------------------------------------------------------- persistence
    def to_bytes(self) -> bytes:
        """Serialise to .npz bytes (deterministic: no timestamps)."""
        header = {"names": self.names, "levels": self.levels, "temperature": self.temperature,
                  "clip": self.clip,
                  "version": self.version, "feature_version": FEATURE_VERSION,
                  "meta": self.meta}
        extra: dict[str, Any] = {}  # Any: np.savez's keywords include allow_pickle
        if self.source_intercept.size:  # absent otherwise: a one-source model keeps its bytes
            header["sources"] = list(self.sources)
            extra["source_intercept"] = self.source_intercept
        buf = io.BytesIO()
        np.savez(buf, header=np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8),
                 mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept,
                 **extra)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> GranularityModel:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            h = json.loads(bytes(z["header"]).decode())
            return cls(names=h["names"], levels=h["levels"], mean=np.array(z["mean"]),
                       scale=np.array(z["scale"]), coef=np.array(z["coef"]),
                       intercept=np.array(z["intercept"]), temperature=h["temperature"],
                       clip=h.get("clip", 3.0),
                       version=h["version"], meta=h.get("meta", {}),
                       source_intercept=(np.array(z["source_intercept"])
                                         if "source_intercept" in z.files else np.zeros((0, 0))),
                       sources=tuple(h.get("sources", ())))


def fit_model(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], names: Sequence[str],
    levels: Sequence[int], alpha: float = 30.0, temperature: float = 0.05,
    clip: float = 3.0, meta: dict[str, Any] | None = None,
) -> GranularityModel:
    """Ridge regression of per-granularity scores pooled over corpora, each weighted equally.

    ``xs[k]``/``ys[k]`` are corpus ``k``'s feature rows and scores (questions x
    granularities). Targets are centred per question (only differences between
    granularities matter for the weights), so a corpus of hard questions does not pull
    the model towards predicting difficulty.
    """
    centred = [np.asarray(y, np.float64) - np.asarray(y, np.float64).mean(axis=1, keepdims=True)
               for y in ys]
    mean, scale, coef, y_mean = pooled_ridge(xs, centred, alpha, clip)
    info = {"alpha": alpha, "n_train": int(sum(len(x) for x in xs)), "corpora": len(xs)}
    info.update(meta or {})
    return GranularityModel(names=list(names), levels=list(levels), mean=mean, scale=scale,
                            coef=coef, intercept=y_mean, temperature=temperature, clip=clip,
                            meta=info)


@lru_cache(maxsize=1)
def shipped_model() -> GranularityModel | None:
    """The model shipped in the package (None if the data file is missing)."""
    data = package_data(SHIPPED_FILE)
    if data is None:
        return None
    try:
        return GranularityModel.from_bytes(data)
    except (OSError, ValueError, KeyError) as exc:
        raise MogragError(f"shipped model {SHIPPED_FILE} is unreadable ({exc}); "
                          "reinstall mograg or rebuild it with bench/train_default_router.py"
                          ) from None


class ModelRouter:
    """A :class:`GranularityModel` as a router (the interface of
    :class:`mograg.retrieval.routers.Router`): features of the query, then blend weights.

    ``span_model`` (the shipped one, or one tuned for the index) serves ``--strategy spans``,
    which ``auto`` picks whenever it is there.
    """

    def __init__(self, model: GranularityModel, name: str = DEFAULT_NAME,
                 span_model: SpanModel | None = None) -> None:
        self.model = model
        self.name = name
        self.span_model = span_model

    def features(
        self, index: IndexView, query: Query, rankings: Sequence[LevelRanking]
    ) -> np.ndarray:
        """The transferable feature vector of one query."""
        graph, links = graph_context(index)
        snap = index.snapshot
        return transfer_features(snap, query, rankings, named_doc_count(snap, graph, query), links)

    def weights(
        self, index: IndexView, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str]
    ) -> np.ndarray:
        """One weight per granularity of ``names``."""
        shares = None
        if self.model.source_intercept.size and rankings:
            from mograg.retrieval.sources import query_shares

            shares = query_shares(index.snapshot, rankings[0].ids, self.model.sources)
        return self.model.weights_for(self.features(index, query, rankings), names, shares)[0]


def _names(index: IndexView) -> list[str]:
    """The index's granularity names (as ``routing.granularity_names``, which sits above)."""
    radii = graph_radii(index.manifest)
    return [*(str(Granularity.level(s)) for s in index.levels),
            *(str(Granularity.graph(s, r)) for s in index.levels for r in radii)]


def default_router_for(index: IndexView) -> ModelRouter | None:
    """The shipped model as a router when it fits the index's granularities, else None."""
    model = shipped_model()
    if model is None or not model.covers(_names(index), index.levels):
        return None
    return ModelRouter(model, span_model=span_model_for(index))


def shipped_router(index: IndexView) -> ModelRouter:
    """The shipped model as a router, or one line saying why it cannot serve this index."""
    model = shipped_model()
    if model is None:
        raise MogragError(f"no shipped model {SHIPPED_FILE} in this installation; "
                          "rebuild it with python bench/train_default_router.py")
    if not model.covers(_names(index), index.levels):
        raise MogragError(
            f"the shipped model knows levels {model.levels} and {', '.join(model.names)}; "
            f"index {index.root} has levels {index.levels}: use entropy or train-router")
    return ModelRouter(model, span_model=span_model_for(index))


def describe_search_router(index: IndexView) -> str:
    """One line: which model a search without ``--router`` uses, and whether it is stale."""
    trained = index.manifest.get("default_router")
    if trained:
        entry = index.manifest.get("routers", {}).get(trained, {})
        base = entry.get("base_model_version")
        line = f"{trained} (trained in this index, {entry.get('model', '?')})"
        if base is not None and int(base) < MODEL_VERSION:
            line += (f"; tuned from shipped model v{base}, this mograg ships v{MODEL_VERSION}: "
                     "re-run mograg tune")
        return line
    model = shipped_model()
    if model is not None and model.covers(_names(index), index.levels):
        corpora = model.meta.get("corpora_names") or model.meta.get("corpora", "?")
        return f"{DEFAULT_NAME} (shipped model {SHIPPED_FILE}, trained on {corpora})"
    why = "not in this installation" if model is None else "made for other levels"
    return f"entropy (the shipped model is {why})"


# chosen on the average of the leave-one-set-out table (bench/transfer.py), never per set
ALPHA = 300.0
TEMPERATURE = 0.05


def fit_default(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], names: Sequence[str],
    corpora: Sequence[str],
) -> GranularityModel:
    """The shipped model's recipe: :func:`fit_model` with the package's constants."""
    from mograg.text.levels import DEFAULT_LEVELS

    return fit_model(xs, ys, names, DEFAULT_LEVELS, alpha=ALPHA, temperature=TEMPERATURE,
                     meta={"corpora_names": ", ".join(corpora),
                           "questions_per_corpus": [len(x) for x in xs]})


def load_tuned(data: bytes, name: str, span_data: bytes | None = None) -> ModelRouter:
    """A router saved by ``mograg tune``: its blend model and, when saved, its span model."""
    spans = SpanModel.from_bytes(span_data) if span_data is not None else None
    return ModelRouter(GranularityModel.from_bytes(data), name=name, span_model=spans)
