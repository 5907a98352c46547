"""The ``stemhub worker`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from stemhub.cluster.tasks import CPU_QUEUE, DEFAULT_HEARTBEAT_S, QUEUES
from stemhub.errors import StemhubError

EXIT_CONFIG = 3


def worker(
    queues: Annotated[
        str,
        typer.Option(help=f"Queues to take tasks from, comma-separated ({', '.join(QUEUES)})."),
    ] = CPU_QUEUE,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Tasks run at once (default: STEMHUB_SEPARATE_CONCURRENCY; 1 per GPU).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name in logs and records.")] = None,
) -> None:
    """Take separation tasks from the broker (STEMHUB_BROKER_URL) and run them here."""
    from stemhub.cluster.worker import run_worker
    from stemhub.config import Settings

    settings = Settings()
    wanted = [item.strip() for item in queues.split(",") if item.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown or not wanted:
        typer.echo(f"error: unknown queue(s) {unknown}; known: {', '.join(QUEUES)}", err=True)
        raise typer.Exit(2)
    try:
        code = run_worker(
            settings,
            queues=wanted,
            concurrency=concurrency or settings.separate_concurrency,
            name=name,
            heartbeat_s=DEFAULT_HEARTBEAT_S,
        )
    except StemhubError as error:
        typer.echo(f"error {error.code.value}: {error.message}", err=True)
        if error.operator_message:
            typer.echo(f"  {error.operator_message}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    raise typer.Exit(code)


app = typer.Typer(add_completion=False)
app.callback(invoke_without_command=True)(worker)
"""``stemhub worker [OPTIONS]``: the command is the group itself, it has no subcommands."""


__all__ = ["app", "worker"]
