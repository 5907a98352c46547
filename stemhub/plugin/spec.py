"""Every pluggy hook of stemhub.

Hooks are plain pluggy calls; an implementation may be ``async def`` and the hub awaits
each result in turn, so no hook here uses ``firstresult`` or ``wrapper``. Callers go
through :class:`stemhub.hub.Hub`'s typed facade, never ``pm.hook`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from stemhub.plugin.marker import hookimpl, hookspec

if TYPE_CHECKING:
    import typer
    from starlette.routing import BaseRoute

    from stemhub.backends.base import Backend
    from stemhub.frontend import Frontend
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest


BackendFactory = Callable[["Hub"], "Backend"]
FrontendFactory = Callable[["Hub"], "Frontend"]
ReadyCheck = Callable[["Hub"], "str | None"]
"""Why a backend can be picked automatically now (``None``: it cannot, by itself)."""
ConfigCheck = Callable[["Hub"], str]
"""What of a frontend's settings is set up ("bot token set, Socket Mode"), for
``stemhub doctor``: read from its settings alone, without connecting, building the
frontend or importing the platform's client library; raises
:class:`stemhub.errors.ConfigError` naming the setting that is missing."""
CommandTarget: TypeAlias = "str | typer.Typer"
"""A command group: ``"package.module:attribute"`` naming a ``typer.Typer``, imported only
when the command runs, or the ``typer.Typer`` itself (its module is imported already)."""


class RegisterBackend(Protocol):
    """The ``register`` callback of :func:`stemhub_register_backends`."""

    def __call__(
        self,
        name: str,
        factory: BackendFactory,
        *,
        priority: int = 0,
        ready: ReadyCheck | None = None,
    ) -> None: ...


@hookspec
def stemhub_register_backends(register: RegisterBackend) -> None:
    """Register separation backends: ``register(name, factory, priority=, ready=)``.

    Called once when the hub starts. The factory runs on first use, so a backend that
    needs an API key fails only when someone asks for it. With no backend asked for or
    configured, the hub picks the backend of highest ``priority`` whose ``ready(hub)``
    gives a reason and whose capabilities cover the request; a backend without
    ``ready`` is used only when asked for by name.
    """


class RegisterFrontend(Protocol):
    """The ``register`` callback of :func:`stemhub_register_frontends`."""

    def __call__(
        self, name: str, factory: FrontendFactory, *, check: ConfigCheck | None = None
    ) -> None: ...


@hookspec
def stemhub_register_frontends(register: RegisterFrontend) -> None:
    """Register frontends: ``register(platform_name, factory, check=)``.

    The name is the ``origin.platform`` of the jobs the frontend delivers. ``check(hub)``
    is what ``stemhub doctor`` asks (see :data:`ConfigCheck`); a frontend without one is
    built to learn whether it is configured.
    """


class RegisterCommand(Protocol):
    """The ``register`` callback of :func:`stemhub_register_commands`."""

    def __call__(self, name: str, target: CommandTarget, *, help: str) -> None: ...


@hookspec
def stemhub_register_commands(register: RegisterCommand) -> None:
    """Add a command group to the ``stemhub`` CLI: ``register(name, "module:app", help=)``.

    ``stemhub --help`` lists ``name`` with ``help`` (one line) without importing the
    module; ``stemhub NAME ...`` imports it and runs the ``typer.Typer`` it names, so a
    plugin's command costs start-up time only when it runs. A name the core or an
    earlier plugin took is refused with a warning.
    """


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


__all__ = [
    "BackendFactory",
    "CommandTarget",
    "ConfigCheck",
    "FrontendFactory",
    "ReadyCheck",
    "RegisterBackend",
    "RegisterCommand",
    "RegisterFrontend",
    "hookimpl",
    "hookspec",
]
