"""Options shared by several commands, and turning their values into objects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from mograg.config import KINDS as GENERATORS
from mograg.types import DEFAULT_STRATEGY, MODES, STRATEGIES, Mode, Strategy

if TYPE_CHECKING:
    from mograg.config import GeneratorSettings
    from mograg.index.core import Index

__all__ = [
    "DEFAULT_STRATEGY", "GENERATORS", "MODES", "STRATEGIES", "ConfigOpt", "Generator", "HostOpt",
    "IndexOpt", "JsonOpt", "ModeOpt", "ModelOpt", "QuietOpt", "RouterOpt", "StrategyOpt",
    "generator_settings", "open_index", "parse_budgets",
]

# A Literal option type makes --help list the choices (`--mode <hybrid|dense|bm25>`) and
# typer reject any other value; the types are mograg.types' (modes, strategies) and the
# config file's generator kinds.
Generator = Literal["openai", "local", "extractive"]


IndexOpt = Annotated[Path, typer.Option("--index", help="Index directory.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ModeOpt = Annotated[
    Mode, typer.Option(help="hybrid: dense vectors and BM25 fused by rank; or one alone.")
]
StrategyOpt = Annotated[
    Strategy,
    typer.Option(help="auto: spans where the shipped or tuned model serves the router, else "
                 "blend; spans: choose spans of any granularity; blend levels; argmax (one "
                 "level); or mix."),
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE",
                 help="Only documents whose metadata match: KEY=VALUE, KEY~VALUE (contains) "
                 "or KEY^VALUE (starts with); keys: id, source, title, period or any "
                 "metadata field; repeat for AND. E.g. --where period~2023."),
]
HostOpt = Annotated[
    str, typer.Option(help="Address to bind; keep 127.0.0.1 unless behind a proxy.")
]
ModelOpt = Annotated[
    str | None, typer.Option(help="Model name (openai) or GGUF file (local).")
]
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


def generator_settings(
    flags: dict[str, Any], model: str | None, config: Path | None
) -> GeneratorSettings:
    """The [generator] settings: flags beat the environment and the config file.

    ``--model`` names a GGUF file for the local generator and a model name otherwise.
    """
    from mograg.config import load_config, resolve_generator_settings

    settings = resolve_generator_settings(flags, load_config(config))
    if model:
        setattr(settings, "model_path" if settings.resolved_kind == "local" else "model", model)
    return settings


def open_index(path: Path) -> Index:
    """The index at --index (imported lazily so --help stays fast)."""
    from mograg.index.core import Index

    return Index.open(path)
