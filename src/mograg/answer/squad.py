"""Scoring answer strings: normalisation, answer-in-text, SQuAD exact match and token F1."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

from mograg.answer.citations import CITE
from mograg.answer.extractive import EXTRACTIVE_NOTE

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}‘’“”–—]")
_WS = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Lowercase, strip accents' compatibility forms, punctuation and extra whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text)
    return _WS.sub(" ", text).strip()


def answer_found(retrieved_text: str, answers: Sequence[str]) -> bool:
    """True if some (normalised, non-empty) answer occurs in the normalised text."""
    hay = f" {normalize_answer(retrieved_text)} "
    for a in answers:
        n = normalize_answer(a)
        if n and f" {n} " in hay:
            return True
    return False


def answer_for_scoring(text: str) -> str:
    """The answer without citation markers or the extractive note (for EM / F1)."""
    text = text.replace(EXTRACTIVE_NOTE, " ")
    return " ".join(CITE.sub(" ", text).split())



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
