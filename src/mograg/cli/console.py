"""What commands share to talk to the user: console, progress bars, error lines, JSON, results."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from mograg.types import SearchResult

out = Console(highlight=False, soft_wrap=True)


class Bars:
    """Rich progress bars on stderr, one per stage; a callable ``cb(stage, done, total)``."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Progress | None = None
        if enabled:  # rich.progress is imported only here: searches never draw bars
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description:>8}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[item]}", style="dim"),
                console=Console(stderr=True),
            )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Bars:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        tid = self._tasks.get(stage)
        if tid is None:
            tid = self._tasks[stage] = self._bar.add_task(stage, total=total or None, item="")
        self._bar.update(tid, completed=done, total=total or None)

    def item(self, stage: str, name: str, done: int, total: int) -> None:
        """Progress of a stage that works item by item (files): shows the item's name."""
        self(stage, done, total)
        if self._bar is not None:
            short = name.rsplit("/", 1)[-1]
            self._bar.update(self._tasks[stage], item=short if len(short) <= 48
                             else short[:45] + "...")

    def log(self, line: str) -> None:
        """A status line on stderr (above the bars while they run)."""
        if self._bar is None:
            say(line)
        else:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)


def progress_bars(quiet: bool) -> Bars:
    return Bars(enabled=not quiet and sys.stderr.isatty())


def say(line: str) -> None:
    """One unwrapped line on stderr (undecodable bytes of names shown as escapes)."""
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def as_sent(obj: Any) -> Any:
    """``obj`` as it arrives through JSON (tuples become lists...): what a result computed
    here is turned into before printing, so that it prints exactly as a server's would."""
    return json.loads(json.dumps(obj, ensure_ascii=False))


def one_line(msg: object) -> str:
    return " ".join(str(msg).split("\n")).strip()


def render_result(res: SearchResult | dict[str, Any], shorten: int | None = None) -> None:
    """Readable rendering of one search result (rank, doc, level, score, span, text), from
    its JSON form (``SearchResult.to_dict()``: what a server sends, so a search through
    ``mograg serve`` prints the same as one in this process)."""
    data = res if isinstance(res, dict) else res.to_dict()
    routing = data.get("routing") or {}
    if routing:
        line = Text(f"router {routing.get('router', '?')}", style="bold")
        if routing.get("strategy"):
            line.append(f" ({routing['strategy']})")
        line.append(f" chose {', '.join(map(str, routing.get('chosen', [])))}")
        weights = routing.get("weights")
        if weights:
            ws = "  ".join(f"{k.split(':', 1)[-1]}:{v:.2f}" for k, v in weights.items())
            line.append(f"   weights {ws}", style="dim")
        out.print(line)
    hits = data["hits"]
    summary = f"{len(hits)} span(s), {data['n_tokens']}/{data['budget']} tokens"
    if routing.get("folded"):
        summary += f", {routing['folded']} near-duplicate(s) of other documents folded"
    out.print(Text(summary, style="dim"))
    for rank, h in enumerate(hits, 1):
        head = Text(f"#{rank} ", style="bold cyan")
        head.append(h["doc_id"].rsplit("/", 1)[-1], style="bold")  # the short name
        page = f"  page {h['page']}" if h.get("page") is not None else ""
        head.append(
            f"{page}  level {h['level']}  score {h['score']:.4f}  chars {h['start']}-{h['end']}"
            f"  {h['n_tokens']} tokens",
            style="dim",
        )
        out.print(head)
        if h.get("section"):  # the heading path / speaker the span belongs to
            out.print(Text(f"   § {h['section']}", style="dim"))
        # lines (table rows) stay lines; runs of spaces and blank lines shrink
        text = "\n".join(" ".join(line.split()) for line in h["text"].split("\n")
                         if line.strip())
        if shorten and len(text) > shorten:
            text = text[: shorten - 1].rstrip() + "…"
        out.print(Padding(Text(text), (0, 0, 0, 4)), soft_wrap=False)
