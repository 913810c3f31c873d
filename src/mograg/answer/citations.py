"""Citations: which numbered sources an answer cites, as exact document spans."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mograg.answer.prompt import NOT_FOUND, Source

CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """Source numbers cited as ``[n]``, ``[n, m]`` in ``text``, in order of first mention."""
    seen: list[int] = []
    for m in CITE.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def says_not_found(text: str) -> bool:
    """True if the answer says the sources do not contain the answer."""
    return NOT_FOUND in " ".join(text.lower().split())


def cite_sources(text: str, sources: Sequence[Source]) -> tuple[list[dict[str, Any]], list[int]]:
    """Cited sources (all sources shown if the answer cites none); also the invalid numbers."""
    by_n = {s.n: s for s in sources}
    numbers = cited_numbers(text)
    invalid = [n for n in numbers if n not in by_n]
    valid = [by_n[n] for n in numbers if n in by_n]
    if not valid:
        valid = [] if says_not_found(text) else list(sources)
    return [s.citation() for s in sorted(valid, key=lambda s: s.n)], invalid

