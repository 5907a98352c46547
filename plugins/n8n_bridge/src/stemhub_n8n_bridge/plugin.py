"""The ``n8n_bridge`` plugin: routes, the frontend, ``stemhub keys``, per-key quotas.

Registered under the ``stemhub`` entry-point group; ``stemhub serve --plugins
n8n_bridge`` serves it on the hub's HTTP server.

Every stemhub process loads this module, most of them serving no HTTP, so the frontend,
the routes and the CLI are imported by the hooks that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub import ErrorCode, RequestRejected, hookimpl, humanize_wait, parse_limit
from stemhub_n8n_bridge.settings import PLATFORM, BridgeSettings

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from stemhub import Job, JobRequest, PluginHub, RegisterCommand, RegisterFrontend
    from stemhub_n8n_bridge.frontend import BridgeFrontend


def _build_frontend(hub: PluginHub) -> BridgeFrontend:
    from stemhub_n8n_bridge.frontend import BridgeFrontend

    return BridgeFrontend(hub)


def bridge_of(hub: PluginHub) -> BridgeFrontend | None:
    frontend = hub.frontend(PLATFORM)
    if frontend is None:
        return None
    # a started frontend means its module is imported already: this import costs nothing
    from stemhub_n8n_bridge.frontend import BridgeFrontend

    return frontend if isinstance(frontend, BridgeFrontend) else None


def _check_config(hub: PluginHub) -> str:
    return BridgeSettings().check_config(hub.http_url)


@hookimpl
def stemhub_register_frontends(register: RegisterFrontend) -> None:
    register(PLATFORM, _build_frontend, check=_check_config)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: PluginHub) -> None:
    from stemhub_n8n_bridge.routes import bridge_routes

    hub.start_frontend(PLATFORM)
    bridge = bridge_of(hub)
    assert bridge is not None
    for route in bridge_routes(bridge):
        register(route)


@hookimpl
def stemhub_register_commands(register: RegisterCommand) -> None:
    register(
        "keys",
        "stemhub_n8n_bridge.cli:keys_app",
        help="Create, list and revoke API keys of the HTTP bridge (n8n, Zapier, StemSplit SDK).",
    )


@hookimpl
async def stemhub_check_quota(hub: PluginHub, request: JobRequest) -> None:
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
    wait = await hub.take_quota("bridge_key", key.id, limit=limit, window_s=window_s)
    if wait is not None:
        raise RequestRejected(
            ErrorCode.QUOTA_EXCEEDED,
            f"This API key may start {key.quota.replace('/', ' jobs per ')}; "
            f"try again in {humanize_wait(wait)}.",
            retry_after=wait,
        )


def _changed(hub: PluginHub, job: Job) -> None:
    bridge = bridge_of(hub)
    if bridge is not None:
        bridge.reads.forget(job.id)


@hookimpl
def stemhub_job_started(hub: PluginHub, job: Job) -> None:
    _changed(hub, job)


@hookimpl
def stemhub_job_progress(hub: PluginHub, job: Job) -> None:
    _changed(hub, job)


@hookimpl
def stemhub_job_completed(hub: PluginHub, job: Job) -> None:
    _changed(hub, job)


@hookimpl
def stemhub_job_failed(hub: PluginHub, job: Job) -> None:
    _changed(hub, job)


@hookimpl
def stemhub_job_delivered(hub: PluginHub, job: Job) -> None:
    bridge = bridge_of(hub)
    if bridge is not None:
        bridge.reads.forget(job.id)
        bridge.metrics.job_finished(job)
