"""``housing monitor`` (placeholder until the monitor lands; replaced by its owner)."""

from __future__ import annotations

import typer


def monitor() -> None:
    """One monitor run: drift, live error, alerts, trainer launch, rollback."""
    raise typer.Exit("housing monitor is not built yet")
