"""`mograg mcp`: the index as a Model Context Protocol server (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from mograg.cli.options import (
    ConfigOpt,
    Generator,
    HostOpt,
    IndexOpt,
    ModelOpt,
    generator_settings,
)


def mcp_cmd(
    index: IndexOpt,
    transport: Annotated[
        Literal["stdio", "http"],
        typer.Option(help="stdio (an agent launches mograg) or streamable HTTP at /mcp."),
    ] = "stdio",
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
    generator: Annotated[
        Generator | None,
        typer.Option(help="Generator of the ask tool [default: the config's, else extractive]."),
    ] = None,
    model: ModelOpt = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL of the ask tool's model.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the index to agents over MCP: search, ask, list_documents, get_document."""
    from mograg.integrations.mcp_server import run
    from mograg.integrations.spans import open_index

    open_index(index)  # a wrong path fails here as one line, not inside the protocol loop
    settings = generator_settings({"kind": generator, "base_url": base_url}, model, config)
    run(index, transport=transport, host=host, port=port, generator=settings)
