"""The stemhub plugin: registers the frontend, its CLI commands and its policy hooks.

Loaded through the ``stemhub`` entry point; ``stemhub run --plugins discord`` starts the
frontend. Job events of every plugin reach every plugin, so each hook here filters on
``origin.platform`` and only records state: progress edits happen in the frontend's own
tasks, never inside the pipeline's hook call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stemhub import JobRequest, hookimpl
from stemhub_discord.access import check_access
from stemhub_discord.frontend import DiscordFrontend
from stemhub_discord.settings import DiscordSettings

if TYPE_CHECKING:
    import typer

    from stemhub import Job
    from stemhub.hub import Hub

PLATFORM = DiscordFrontend.name


def _frontend(hub: Hub) -> DiscordFrontend | None:
    frontend = hub.frontends.get(PLATFORM)
    return frontend if isinstance(frontend, DiscordFrontend) else None


def _moved(hub: Hub, job: Job) -> None:
    if job.origin.platform != PLATFORM:
        return
    frontend = _frontend(hub)
    if frontend is not None:
        frontend.on_job_event(job)


@hookimpl
def stemhub_register_frontends(register: Callable[[str, Any], None]) -> None:
    register(PLATFORM, DiscordFrontend)


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
