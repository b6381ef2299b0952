"""``housing serve`` (placeholder until the inference service lands; replaced by its owner)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the champion model over HTTP."""
    raise typer.Exit("housing serve is not built yet")
