"""The ``slack`` plugin: the frontend, its HTTP route, access control, progress, CLI.

Registered through the ``stemhub`` entry point, so ``stemhub run --plugins slack`` runs
it: in Socket Mode when an app token is set, otherwise in HTTP mode on the hub's HTTP
server at ``/slack/events`` (commands, interactivity and events on one URL).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stemhub import hookimpl
from stemhub.config import Settings
from stemhub.hookspecs import FrontendFactory
from stemhub_slack.frontend import SlackFrontend
from stemhub_slack.manifest import build_manifest, scopes_for
from stemhub_slack.settings import EVENTS_PATH, SlackSettings

if TYPE_CHECKING:
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest


def _frontend(hub: Hub) -> SlackFrontend | None:
    frontend = hub.frontends.get(SlackFrontend.name)
    return frontend if isinstance(frontend, SlackFrontend) else None


@hookimpl
def stemhub_register_frontends(register: Callable[[str, FrontendFactory], None]) -> None:
    register(SlackFrontend.name, SlackFrontend)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    frontend = _frontend(hub)
    settings = frontend.settings if frontend is not None else SlackSettings()
    if settings.resolved_mode() != "http":
        return

    async def slack_events(request: Request) -> Response:
        running = _frontend(hub)
        if running is None:
            return JSONResponse(
                {"error": {"code": "BACKEND_UNAVAILABLE", "message": "Slack is not running."}},
                status_code=503,
            )
        return await running.handle_http(request)

    register(Route(EVENTS_PATH, slack_events, methods=["POST"]))


@hookimpl
async def stemhub_validate_request(hub: Hub, request: JobRequest) -> None:
    frontend = _frontend(hub)
    if request.origin.platform == SlackFrontend.name and frontend is not None:
        await frontend.access.check(request.origin)


@hookimpl
async def stemhub_job_started(hub: Hub, job: Job) -> None:
    frontend = _frontend(hub)
    if frontend is not None:
        await frontend.show_progress(job)


@hookimpl
async def stemhub_job_progress(hub: Hub, job: Job) -> None:
    frontend = _frontend(hub)
    if frontend is not None:
        await frontend.show_progress(job)


slack_cli = typer.Typer(help="Slack: the app manifest and setup checks.", no_args_is_help=True)


@slack_cli.command("manifest")
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
    typer.echo(json.dumps(build_manifest(settings, public_url=url), indent=2))
    why = "; ".join(f"{scope}: {reason}" for scope, reason in sorted(scopes_for(settings).items()))
    typer.echo(f"scopes - {why}", err=True)


@hookimpl
def stemhub_register_commands(cli: typer.Typer) -> None:
    cli.add_typer(slack_cli, name="slack")


__all__ = ["slack_cli"]
