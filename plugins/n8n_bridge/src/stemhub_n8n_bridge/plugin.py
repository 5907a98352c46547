"""The ``n8n_bridge`` plugin: routes, the frontend, ``stemhub keys``, per-key quotas.

Registered under the ``stemhub`` entry-point group; ``stemhub serve --plugins
n8n_bridge`` serves it on the hub's HTTP server.

Every stemhub process loads this module, most of them serving no HTTP, so the frontend,
the routes and the CLI are imported by the hooks that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub import hookimpl
from stemhub.errors import ErrorCode, RequestRejected
from stemhub.quota import humanize_wait, parse_limit
from stemhub_n8n_bridge.settings import PLATFORM

if TYPE_CHECKING:
    import typer
    from starlette.routing import BaseRoute

    from stemhub.hookspecs import FrontendFactory
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest
    from stemhub_n8n_bridge.frontend import BridgeFrontend


def _build_frontend(hub: Hub) -> BridgeFrontend:
    from stemhub_n8n_bridge.frontend import BridgeFrontend

    return BridgeFrontend(hub)


def bridge_of(hub: Hub) -> BridgeFrontend | None:
    frontend = hub.frontends.get(PLATFORM)
    if frontend is None:
        return None
    # a started frontend means its module is imported already: this import costs nothing
    from stemhub_n8n_bridge.frontend import BridgeFrontend

    return frontend if isinstance(frontend, BridgeFrontend) else None


@hookimpl
def stemhub_register_frontends(register: Callable[[str, FrontendFactory], None]) -> None:
    register(PLATFORM, _build_frontend)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    from stemhub_n8n_bridge.routes import bridge_routes

    hub.start_frontend(PLATFORM)
    bridge = bridge_of(hub)
    assert bridge is not None
    for route in bridge_routes(bridge):
        register(route)


@hookimpl
def stemhub_register_commands(cli: typer.Typer) -> None:
    from stemhub_n8n_bridge.cli import keys_app

    cli.add_typer(keys_app, name="keys")


@hookimpl
async def stemhub_check_quota(hub: Hub, request: JobRequest) -> None:
    """A key created with ``--quota`` may start only that many jobs per period."""
    origin = request.origin
    if origin.platform != PLATFORM or not origin.api_key_id:
        return
    bridge = bridge_of(hub)
    if bridge is None:
        return
    key = await bridge.keys.get(origin.api_key_id)
    if key is None or not key.quota:
        return
    limit, window_s = parse_limit(key.quota)
    wait = await hub.store.take_quota("bridge_key", key.id, limit=limit, window_s=window_s)
    if wait is not None:
        raise RequestRejected(
            ErrorCode.QUOTA_EXCEEDED,
            f"This API key may start {key.quota.replace('/', ' jobs per ')}; "
            f"try again in {humanize_wait(wait)}.",
            retry_after=wait,
        )


@hookimpl
def stemhub_job_delivered(hub: Hub, job: Job) -> None:
    bridge = bridge_of(hub)
    if bridge is not None:
        bridge.metrics.job_finished(job)
