"""The ``slack`` plugin: the frontend, its HTTP route, access control, progress, CLI.

Registered through the ``stemhub`` entry point, so ``stemhub run --plugins slack`` runs
it: in Socket Mode when an app token is set, otherwise in HTTP mode on the hub's HTTP
server at ``/slack/events`` (commands, interactivity and events on one URL).

Every stemhub process loads this module, most of them without ever starting Slack, so
it imports neither slack_bolt nor slack_sdk (nor aiohttp): the frontend is imported
when the hub builds it, the route's web framework when the hub builds its HTTP app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from stemhub import hookimpl
from stemhub_slack.settings import (
    EVENTS_PATH,
    INSTALL_PATH,
    PLATFORM,
    REDIRECT_PATH,
    SlackSettings,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from stemhub import Job, JobRequest, RegisterCommand, RegisterFrontend
    from stemhub import PluginHub as Hub
    from stemhub_slack.frontend import SlackFrontend

    Handler = Callable[[Request], Awaitable[Response]]


def _build_frontend(hub: Hub) -> SlackFrontend:
    from stemhub_slack.frontend import SlackFrontend

    return SlackFrontend(hub)


def _frontend(hub: Hub) -> SlackFrontend | None:
    frontend = hub.frontend(PLATFORM)
    if frontend is None:
        return None
    # a started frontend means its module is imported already: this import costs nothing
    from stemhub_slack.frontend import SlackFrontend

    return frontend if isinstance(frontend, SlackFrontend) else None


def _check_config(hub: Hub) -> str:
    return SlackSettings().check_config()


@hookimpl
def stemhub_register_frontends(register: RegisterFrontend) -> None:
    register(PLATFORM, _build_frontend, check=_check_config)


async def _to_frontend(
    hub: Hub, request: Request, handler: Callable[[SlackFrontend], Handler]
) -> Response:
    """Hand a request to the running Slack frontend; 503 while it is not running."""
    from starlette.responses import JSONResponse

    running = _frontend(hub)
    if running is None:
        return JSONResponse(
            {"error": {"code": "BACKEND_UNAVAILABLE", "message": "Slack is not running."}},
            status_code=503,
        )
    return await handler(running)(request)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    frontend = _frontend(hub)
    settings = frontend.settings if frontend is not None else SlackSettings()
    if settings.resolved_mode() != "http":
        return
    from starlette.routing import Route

    async def slack_events(request: Request) -> Response:
        return await _to_frontend(hub, request, lambda running: running.handle_http)

    register(Route(EVENTS_PATH, slack_events, methods=["POST"]))
    if not settings.multi_workspace():
        return

    async def slack_oauth(request: Request) -> Response:
        return await _to_frontend(hub, request, lambda running: running.handle_oauth)

    register(Route(INSTALL_PATH, slack_oauth, methods=["GET"]))
    register(Route(REDIRECT_PATH, slack_oauth, methods=["GET"]))


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
def stemhub_register_commands(register: RegisterCommand) -> None:
    register("slack", "stemhub_slack.cli:app", help="Slack: the app manifest and setup checks.")
