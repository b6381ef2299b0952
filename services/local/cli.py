"""``housing simulate`` and ``housing demo`` (placeholders; replaced by their owner)."""

from __future__ import annotations

import typer


def simulate() -> None:
    """Replay real rows against an inference URL and post the true prices later."""
    raise typer.Exit("housing simulate is not built yet")


def demo() -> None:
    """The closed loop on one machine."""
    raise typer.Exit("housing demo is not built yet")
