"""``stemhub slack ...``: the app manifest an operator pastes into Slack, with its scopes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from stemhub import Settings
from stemhub_slack.manifest import build_manifest, scopes_for
from stemhub_slack.settings import SlackSettings

app = typer.Typer(help="Slack: the app manifest and setup checks.", no_args_is_help=True)


@app.command("manifest")
def manifest(
    mode: Annotated[
        str | None, typer.Option(help="socket or http (default: from your settings)")
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="The hub's public URL, for HTTP mode request URLs")
    ] = None,
) -> None:
    """Print the Slack app manifest (JSON) to paste into "Create New App > From a manifest"."""
    settings = SlackSettings()
    if mode is not None:
        if mode not in ("socket", "http"):
            raise typer.BadParameter("mode is socket or http")
        settings = settings.model_copy(update={"mode": mode})
    url = public_url or Settings().public_url
    try:
        built = build_manifest(settings, public_url=url)
    except ValueError as error:
        typer.echo(f"error CONFIG_MISSING: {error}", err=True)
        raise typer.Exit(3) from None
    typer.echo(json.dumps(built, indent=2))
    why = "; ".join(f"{scope}: {reason}" for scope, reason in sorted(scopes_for(settings).items()))
    typer.echo(f"scopes - {why}", err=True)


__all__ = ["app"]
