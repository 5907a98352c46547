"""The ``slack`` plugin: the frontend, its HTTP route, access control, progress, CLI.

Registered through the ``stemhub`` entry point, so ``stemhub run --plugins slack`` runs
it: in Socket Mode when an app token is set, otherwise in HTTP mode on the hub's HTTP
server at ``/slack/events`` (commands, interactivity and events on one URL).

Every stemhub process loads this module, most of them without ever starting Slack, so
it imports neither slack_bolt nor slack_sdk (nor aiohttp): the frontend is imported
when the hub builds it, the route's web framework when the hub builds its HTTP app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub import hookimpl
from stemhub_slack.settings import EVENTS_PATH, PLATFORM, SlackSettings

if TYPE_CHECKING:
    import typer
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from stemhub.hookspecs import FrontendFactory
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest
    from stemhub_slack.frontend import SlackFrontend


def _build_frontend(hub: Hub) -> SlackFrontend:
    from stemhub_slack.frontend import SlackFrontend

    return SlackFrontend(hub)


def _frontend(hub: Hub) -> SlackFrontend | None:
    frontend = hub.frontends.get(PLATFORM)
    if frontend is None:
        return None
    # a started frontend means its module is imported already: this import costs nothing
    from stemhub_slack.frontend import SlackFrontend

    return frontend if isinstance(frontend, SlackFrontend) else None


@hookimpl
def stemhub_register_frontends(register: Callable[[str, FrontendFactory], None]) -> None:
    register(PLATFORM, _build_frontend)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    frontend = _frontend(hub)
    settings = frontend.settings if frontend is not None else SlackSettings()
    if settings.resolved_mode() != "http":
        return
    from starlette.responses import JSONResponse
    from starlette.routing import Route

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
    if request.origin.platform == PLATFORM and frontend is not None:
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


@hookimpl
def stemhub_register_commands(cli: typer.Typer) -> None:
    from stemhub_slack.cli import app

    cli.add_typer(app, name="slack")
