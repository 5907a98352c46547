"""Every HTTP route of the bridge: both API dialects, ``/openapi.json``, ``/docs``, ``/metrics``.

Built once, when the hub builds its HTTP app; the plugin module imports this lazily so
a hub that serves no HTTP never loads the web framework or the API modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stemhub_n8n_bridge import stemsplit_api, v1_api
from stemhub_n8n_bridge._http import Guard
from stemhub_n8n_bridge.metrics import CONTENT_TYPE
from stemhub_n8n_bridge.openapi import docs_page, openapi_document

if TYPE_CHECKING:
    from starlette.requests import Request

    from stemhub_n8n_bridge.frontend import BridgeFrontend


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


def bridge_routes(bridge: BridgeFrontend) -> list[BaseRoute]:
    """The StemSplit-compatible API, the ``/v1`` API and the meta routes, behind one guard."""
    guard = Guard(bridge)
    return stemsplit_api.routes(bridge, guard) + v1_api.routes(bridge, guard) + meta_routes(bridge)


__all__ = ["bridge_routes", "meta_routes"]
