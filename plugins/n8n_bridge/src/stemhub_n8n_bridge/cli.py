"""``stemhub keys create|list|revoke|webhook-secret``: the bridge's API keys.

The commands open the hub's plugin state alone (:func:`stemhub.open_plugin_state`: the
store and the sealer, no hub, plugins or backends), so they work while a hub is running
on the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from stemhub import StemhubError, open_plugin_state
from stemhub_n8n_bridge.keys import ApiKeys

T = TypeVar("T")

keys_app = typer.Typer(
    help="Create, list and revoke API keys of the HTTP bridge (n8n, Zapier, StemSplit SDK).",
    no_args_is_help=True,
)
console = Console()


async def _with_keys(action: Callable[[ApiKeys], Awaitable[T]]) -> T:
    async with open_plugin_state() as state:
        return await action(ApiKeys(state))


def _run(action: Callable[[ApiKeys], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_with_keys(action))
    except StemhubError as error:
        console.print(f"[red]error[/red] {error.code.value}: {error.message}")
        raise typer.Exit(2) from None


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "default",
    quota: Annotated[
        str | None,
        typer.Option(help="Jobs this key may start, e.g. 100/day (on top of the hub's)."),
    ] = None,
) -> None:
    """Make a key; it is printed once and only its hash is kept."""
    issued = _run(lambda keys: keys.create(name, quota=quota))
    console.print(f"id:             {issued.key.id}")
    console.print(f"key:            {issued.token}")
    console.print(f"webhook secret: {issued.webhook_secret}")
    console.print("Store the key now: it cannot be shown again.", style="yellow")


@keys_app.command("list")
def list_keys() -> None:
    """Every key: id, name, first characters, quota, created, revoked."""
    keys = _run(lambda k: k.list())
    table = Table()
    for column in ("id", "name", "starts with", "quota", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            key.hint + "…",
            key.quota or "-",
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "-",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Refuse a key from now on (403 API_KEY_REVOKED)."""
    if not _run(lambda keys: keys.revoke(key_id)):
        console.print(f"[red]error[/red] NOT_FOUND: there is no key {key_id}.")
        raise typer.Exit(2)
    console.print(f"{key_id} revoked")


@keys_app.command("webhook-secret")
def webhook_secret(key_id: str) -> None:
    """The secret that signs the per-job callbacks of a key's jobs."""
    secret = _run(lambda keys: keys.webhook_secret(key_id))
    if secret is None:
        console.print(f"[red]error[/red] NOT_FOUND: there is no key {key_id}.")
        raise typer.Exit(2)
    console.print(secret)


__all__ = ["keys_app"]
