"""The stemhub plugin: registers the frontend, its CLI commands and its policy hooks.

Loaded through the ``stemhub`` entry point; ``stemhub run --plugins discord`` starts the
frontend. Job events of every plugin reach every plugin, so each hook here filters on
``origin.platform`` and only records state: progress edits happen in the frontend's own
tasks, never inside the pipeline's hook call.

Every stemhub process loads this module, most of them without ever starting the bot, so
it imports no discord.py (nor aiohttp): the frontend is imported when the hub builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub import JobRequest, hookimpl
from stemhub_discord.access import check_access
from stemhub_discord.settings import PLATFORM, DiscordSettings

if TYPE_CHECKING:
    import typer

    from stemhub import Job
    from stemhub.hookspecs import FrontendFactory
    from stemhub.hub import Hub
    from stemhub_discord.frontend import DiscordFrontend


def _build_frontend(hub: Hub) -> DiscordFrontend:
    from stemhub_discord.frontend import DiscordFrontend

    return DiscordFrontend(hub)


def _frontend(hub: Hub) -> DiscordFrontend | None:
    frontend = hub.frontends.get(PLATFORM)
    if frontend is None:
        return None
    # a started frontend means its module is imported already: this import costs nothing
    from stemhub_discord.frontend import DiscordFrontend

    return frontend if isinstance(frontend, DiscordFrontend) else None


def _moved(hub: Hub, job: Job) -> None:
    if job.origin.platform != PLATFORM:
        return
    frontend = _frontend(hub)
    if frontend is not None:
        frontend.on_job_event(job)


@hookimpl
def stemhub_register_frontends(register: Callable[[str, FrontendFactory], None]) -> None:
    register(PLATFORM, _build_frontend)


@hookimpl
def stemhub_register_commands(cli: typer.Typer) -> None:
    from stemhub_discord.cli import app

    cli.add_typer(app, name="discord")


@hookimpl
def stemhub_validate_request(hub: Hub, request: JobRequest) -> None:
    if request.origin.platform != PLATFORM:
        return
    frontend = _frontend(hub)
    settings = frontend.settings if frontend is not None else DiscordSettings()
    check_access(settings, request.origin)


@hookimpl
def stemhub_job_started(hub: Hub, job: Job) -> None:
    _moved(hub, job)


@hookimpl
def stemhub_job_progress(hub: Hub, job: Job) -> None:
    _moved(hub, job)


@hookimpl
def stemhub_job_completed(hub: Hub, job: Job) -> None:
    _moved(hub, job)
