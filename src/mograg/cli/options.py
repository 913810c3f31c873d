"""Options shared by several commands, and turning their values into objects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mograg.config import KINDS as GENERATORS
from mograg.types import DEFAULT_STRATEGY, MODES, STRATEGIES

if TYPE_CHECKING:
    from mograg.index.core import Index

__all__ = [
    "DEFAULT_STRATEGY", "GENERATORS", "MODES", "STRATEGIES", "ConfigOpt", "IndexOpt", "JsonOpt",
    "ModeOpt", "QuietOpt", "RouterOpt", "StrategyOpt", "choice", "open_index", "parse_budgets",
]


def choice(*allowed: str) -> Any:
    """An option callback accepting only ``allowed`` values (or None)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    return check


IndexOpt = Annotated[Path, typer.Option("--index", help="Index directory.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ModeOpt = Annotated[str, typer.Option(callback=choice(*MODES))]
StrategyOpt = Annotated[str, typer.Option(callback=choice(*STRATEGIES))]
RouterOpt = Annotated[
    str | None,
    typer.Option(help="Trained router name, shipped, entropy, rrf-levels, level:N or "
                 "graph:N:r=R [default: the index's trained router, else the shipped model]."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config [default: ./mograg.toml].")
]


def parse_budgets(value: str) -> list[int]:
    """The --budget value: comma-separated positive token budgets."""
    try:
        budgets = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give token budgets like 256 or 256,512",
                                 param_hint="--budget") from None
    if not budgets or min(budgets) < 1:
        raise typer.BadParameter(f"{value!r}: give positive token budgets like 256,512",
                                 param_hint="--budget")
    return budgets


def open_index(path: Path) -> Index:
    """The index at --index (imported lazily so --help stays fast)."""
    from mograg.index.core import Index

    return Index.open(path)
