"""``stemhub discord ...``: the commands an operator runs while setting the bot up."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import typer

from stemhub_discord.settings import DiscordSettings

app = typer.Typer(help="Set up the Discord bot.", no_args_is_help=True)


def application_id_from_token(token: str) -> int | None:
    """A bot token starts with the bot user's id in base64, which is the application id."""
    first = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(decoded) if decoded.isdigit() else None


@app.command("invite-url")
def invite_url_command(
    client_id: Annotated[
        int | None,
        typer.Option(help="Application id (default: STEMHUB_DISCORD_APPLICATION_ID or the token)"),
    ] = None,
) -> None:
    """Print the URL that adds the bot to a server: the scopes and permissions it needs."""
    # discord.py loads here, not when `stemhub --help` builds the command tree
    from stemhub_discord.client import invite_permissions, invite_url

    settings = DiscordSettings()
    application_id = client_id or settings.application_id
    if application_id is None and settings.token is not None:
        application_id = application_id_from_token(settings.token.get_secret_value())
    if application_id is None:
        typer.echo(
            "Give --client-id, or set STEMHUB_DISCORD_APPLICATION_ID or DISCORD_TOKEN.", err=True
        )
        raise typer.Exit(3)
    typer.echo(invite_url(application_id))
    names = ", ".join(name for name, on in invite_permissions() if on)
    typer.echo(
        f"scopes: bot, applications.commands; permissions {invite_permissions().value}: {names}",
        err=True,
    )


__all__ = ["app", "application_id_from_token"]
