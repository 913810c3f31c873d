"""`mograg serve`: the HTTP server over one index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mograg.cli.options import Generator, HostOpt, IndexOpt


def serve_cmd(
    index: IndexOpt,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file", help="File holding the API key (else MOGRAG_API_KEY)."
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Require the API key for reads too.")
    ] = False,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Request body limit in MiB.")
    ] = 32.0,
    max_budget: Annotated[
        int, typer.Option(help="Largest token budget a request may ask for.")
    ] = 8192,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config ([generator] for POST /ask)."),
    ] = None,
    generator: Annotated[
        Generator | None,
        typer.Option(help="Generator for POST /ask [default: the config's, else extractive]."),
    ] = None,
    max_connections_per_client: Annotated[
        int, typer.Option(min=1, help="Open connections one client address may hold.")
    ] = 64,
) -> None:
    """Serve the index over HTTP: JSON API (docs at /docs) and a routing inspector page."""
    from mograg.server.app import serve as run_server

    run_server(index, host=host, port=port, api_key_file=api_key_file, private=private,
               max_body_bytes=int(max_body_mb * 1024 * 1024), max_budget=max_budget,
               config=config, generator_flags={"kind": generator},
               max_connections_per_client=max_connections_per_client)
