"""The ``n8n_bridge`` plugin: routes, the frontend, ``stemhub keys``, per-key quotas.

Registered under the ``stemhub`` entry-point group; ``stemhub serve --plugins
n8n_bridge`` serves it on the hub's HTTP server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stemhub import hookimpl
from stemhub.errors import ErrorCode, RequestRejected
from stemhub.quota import humanize_wait, parse_limit
from stemhub_n8n_bridge import stemsplit_api, v1_api
from stemhub_n8n_bridge._http import Guard
from stemhub_n8n_bridge.cli import keys_app
from stemhub_n8n_bridge.frontend import PLATFORM, BridgeFrontend
from stemhub_n8n_bridge.metrics import CONTENT_TYPE
from stemhub_n8n_bridge.openapi import docs_page, openapi_document

if TYPE_CHECKING:
    import typer

    from stemhub.hookspecs import FrontendFactory
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest


def bridge_of(hub: Hub) -> BridgeFrontend | None:
    frontend = hub.frontends.get(PLATFORM)
    return frontend if isinstance(frontend, BridgeFrontend) else None


def meta_routes(bridge: BridgeFrontend) -> list[BaseRoute]:
    """``/openapi.json``, ``/docs`` and ``/metrics`` (no API key needed)."""

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document(bridge.base_url or None))

    async def docs(_request: Request) -> Response:
        return HTMLResponse(docs_page(openapi_document(bridge.base_url or None)))

    async def metrics(_request: Request) -> Response:
        jobs = await bridge.hub.store.count_by_status()
        outbox = await bridge.outbox.counts()
        return Response(bridge.metrics.render(jobs, outbox), media_type=CONTENT_TYPE)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


@hookimpl
def stemhub_register_frontends(register: Callable[[str, FrontendFactory], None]) -> None:
    register(PLATFORM, BridgeFrontend)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    frontend = hub.start_frontend(PLATFORM)
    assert isinstance(frontend, BridgeFrontend)
    guard = Guard(frontend)
    for route in (
        stemsplit_api.routes(frontend, guard)
        + v1_api.routes(frontend, guard)
        + meta_routes(frontend)
    ):
        register(route)


@hookimpl
def stemhub_register_commands(cli: typer.Typer) -> None:
    cli.add_typer(keys_app, name="keys")


@hookimpl
async def stemhub_check_quota(hub: Hub, request: JobRequest) -> None:
    """A key created with ``--quota`` may start only that many jobs per period."""
    origin = request.origin
    bridge = bridge_of(hub)
    if origin.platform != PLATFORM or not origin.api_key_id or bridge is None:
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
