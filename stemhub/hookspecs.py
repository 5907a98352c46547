"""Every pluggy hook of stemhub.

Hooks are plain pluggy calls; an implementation may be ``async def`` and the hub awaits
each result in turn, so no hook here uses ``firstresult`` or ``wrapper``. Callers go
through :class:`stemhub.hub.Hub`'s typed facade, never ``pm.hook`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from starlette.routing import BaseRoute

    from stemhub.backends.base import Backend
    from stemhub.frontend import Frontend
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest

hookspec = pluggy.HookspecMarker("stemhub")
hookimpl = pluggy.HookimplMarker("stemhub")

BackendFactory = Callable[["Hub"], "Backend"]
FrontendFactory = Callable[["Hub"], "Frontend"]


@hookspec
def stemhub_register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    """Register separation backends: ``register(name, factory)``.

    Called once when the hub starts. The factory runs on first use, so a backend that
    needs an API key fails only when someone asks for it.
    """


@hookspec
def stemhub_register_frontends(register: Callable[[str, FrontendFactory], None]) -> None:
    """Register frontends: ``register(platform_name, factory)``.

    The name is the ``origin.platform`` of the jobs the frontend delivers.
    """


@hookspec
def stemhub_register_commands(cli: typer.Typer) -> None:
    """Add commands or sub-apps to the ``stemhub`` CLI (``cli.add_typer(...)``)."""


@hookspec
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    """Add Starlette routes (``Route``/``Mount``) to the hub's one ASGI app.

    Called when the HTTP server is built; a plugin that registers a route makes
    ``stemhub run`` start the server.
    """


@hookspec
def stemhub_startup(hub: Hub) -> Any:
    """The hub is open (store migrated, backends registered); start background work."""


@hookspec
def stemhub_shutdown(hub: Hub) -> Any:
    """The hub is closing; stop background work started in :func:`stemhub_startup`."""


@hookspec
def stemhub_validate_request(hub: Hub, request: JobRequest) -> Any:
    """Refuse a request by raising :class:`stemhub.errors.RequestRejected`.

    Called by ``Hub.submit`` before anything is stored (access control, size policy).
    """


@hookspec
def stemhub_check_quota(hub: Hub, request: JobRequest) -> Any:
    """Refuse a request over quota: raise RequestRejected(QUOTA_EXCEEDED, retry_after=s).

    Called after validation; quota counters live in the store, not in memory.
    """


@hookspec
def stemhub_job_created(hub: Hub, job: Job) -> Any:
    """A job was accepted and persisted as QUEUED."""


@hookspec
def stemhub_job_started(hub: Hub, job: Job) -> Any:
    """A job entered a pipeline stage (``job.stage`` says which)."""


@hookspec
def stemhub_job_progress(hub: Hub, job: Job) -> Any:
    """A job's progress moved; coalesced to at most one call per progress interval."""


@hookspec
def stemhub_job_completed(hub: Hub, job: Job) -> Any:
    """Separation finished; ``job.outputs`` holds the stems. Delivery follows."""


@hookspec
def stemhub_job_failed(hub: Hub, job: Job) -> Any:
    """A job failed (``job.error_code``, ``job.error_message``) or was cancelled."""


@hookspec
def stemhub_job_delivered(hub: Hub, job: Job) -> Any:
    """The origin's frontend delivered the job; recorded, never repeated."""


__all__ = ["BackendFactory", "FrontendFactory", "hookimpl", "hookspec"]
