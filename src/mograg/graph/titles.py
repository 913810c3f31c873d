"""Titles as links: which documents a text (a chunk, a question) names by title."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mograg.store.graph_files import Graph
    from mograg.store.snapshot import Snapshot

MIN_TITLE_CHARS = 4
ASKED_CACHE = 1024  # questions whose named documents a matcher remembers
_WORD_RE = re.compile(r"\w+")
_DISAMBIGUATION_RE = re.compile(r"\s*\([^()]*\)\s*$")


def title_core(title: str) -> str:
    """The name a title is mentioned by: no trailing ``(disambiguation)``, ``_`` as space."""
    return _DISAMBIGUATION_RE.sub("", title.replace("_", " ")).strip()


def _linkable(core: str) -> tuple[str, ...] | None:
    """Word sequence to look for, or None for titles that would link by accident.

    Too-short titles and all-lower-case ones (typically file names such as ``notes``)
    are skipped; matching is case-sensitive and on whole words.
    """
    words = tuple(_WORD_RE.findall(core))
    if len(core) < MIN_TITLE_CHARS or not words:
        return None
    if core == core.lower() and core != core.upper():  # cased text, all lower case
        return None
    return words


class TitleMatcher:
    """Finds which documents a text names by title (longest match wins).

    A match inside a longer match is dropped: "Shirley Temple Black" names
    *Shirley Temple Black*, not also *Temple*. Matching is case-sensitive unless asked
    otherwise (for questions typed without capitals).
    """

    def __init__(self, titles: Iterable[tuple[int, str | None]]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
        # questions' answers (a search asks once per level and granularity)
        self._asked: dict[str, tuple[int, ...]] = {}
        self._folded: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
        self.docs: list[int] = []  # the documents with a linkable title
        for d, title in titles:
            words = _linkable(title_core(title)) if title else None
            if words is not None:
                self.docs.append(d)
                self._by_first[words[0]].append((words, d))
                folded = tuple(w.casefold() for w in words)
                self._folded[folded[0]].append((folded, d))

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def named_in_question(self, question: str) -> list[int]:
        """:meth:`find` for a question: a question typed without capitals carries no
        case, so it is matched ignoring case. Remembered for the last questions."""
        found = self._asked.get(question)
        if found is None:
            found = tuple(self.find(question, ignore_case=question == question.lower()))
            if len(self._asked) >= ASKED_CACHE:
                self._asked.clear()
            self._asked[question] = found
        return list(found)

    def find(self, text: str, ignore_case: bool = False) -> list[int]:
        """Documents named in ``text``, in order of first mention."""
        words = _WORD_RE.findall(text)
        table = self._by_first
        if ignore_case:
            words = [w.casefold() for w in words]
            table = self._folded
        spans: list[tuple[int, int, int]] = []  # (start, end, doc)
        for i, w in enumerate(words):
            for seq, d in table.get(w, ()):
                if tuple(words[i : i + len(seq)]) == seq:
                    spans.append((i, i + len(seq), d))
        out: list[int] = []
        for start, end, d in spans:
            inside = any(s <= start and end <= e and e - s > end - start for s, e, _ in spans)
            if not inside and d not in out:
                out.append(d)
        return out


def title_matcher(snap: Snapshot, graph: Graph) -> TitleMatcher:
    """Title matcher over the graph's link targets (built on first use, then kept)."""
    matcher = graph.cache.get("matcher")
    if matcher is None:
        matcher = graph.cache["matcher"] = TitleMatcher(
            (int(d), snap.metadata(int(d)).get("title")) for d in graph.targets
        )
    return matcher
