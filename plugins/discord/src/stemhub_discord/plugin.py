"""The stemhub plugin: registers the frontend, its CLI commands and its policy hooks.

Loaded through the ``stemhub`` entry point; ``stemhub run --plugins discord`` starts the
frontend. Job events of every plugin reach every plugin, so each hook here filters on
``origin.platform`` and only records state: progress edits happen in the frontend's own
tasks, never inside the pipeline's hook call.

Every stemhub process loads this module, most of them without ever starting the bot, so
it imports no discord.py (nor aiohttp): the frontend is imported when the hub builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stemhub import JobRequest, hookimpl
from stemhub_discord.access import check_access
from stemhub_discord.settings import PLATFORM, DiscordSettings

if TYPE_CHECKING:
    from stemhub import Job, PluginHub, RegisterCommand, RegisterFrontend
    from stemhub_discord.frontend import DiscordFrontend


def _build_frontend(hub: PluginHub) -> DiscordFrontend:
    """The frontend, refused up front without a token: ``stemhub run`` without
    ``--plugins`` then skips an unconfigured Discord instead of stopping every frontend."""
    from stemhub_discord.frontend import DiscordFrontend
    from stemhub_discord.settings import DiscordSettings

    settings = DiscordSettings()
    settings.check_config()
    return DiscordFrontend(hub, settings)


def _check_config(hub: PluginHub) -> str:
    return DiscordSettings().check_config()


def _frontend(hub: PluginHub) -> DiscordFrontend | None:
    frontend = hub.frontend(PLATFORM)
    if frontend is None:
        return None
    # a started frontend means its module is imported already: this import costs nothing
    from stemhub_discord.frontend import DiscordFrontend

    return frontend if isinstance(frontend, DiscordFrontend) else None


def _moved(hub: PluginHub, job: Job) -> None:
    if job.origin.platform != PLATFORM:
        return
    frontend = _frontend(hub)
    if frontend is not None:
        frontend.on_job_event(job)


@hookimpl
def stemhub_register_frontends(register: RegisterFrontend) -> None:
    register(PLATFORM, _build_frontend, check=_check_config)


@hookimpl
def stemhub_register_commands(register: RegisterCommand) -> None:
    register("discord", "stemhub_discord.cli:app", help="Set up the Discord bot.")


@hookimpl
def stemhub_validate_request(hub: PluginHub, request: JobRequest) -> None:
    if request.origin.platform != PLATFORM:
        return
    frontend = _frontend(hub)
    settings = frontend.settings if frontend is not None else DiscordSettings()
    check_access(settings, request.origin)


@hookimpl
def stemhub_job_started(hub: PluginHub, job: Job) -> None:
    _moved(hub, job)


@hookimpl
def stemhub_job_progress(hub: PluginHub, job: Job) -> None:
    _moved(hub, job)


@hookimpl
def stemhub_job_completed(hub: PluginHub, job: Job) -> None:
    _moved(hub, job)
