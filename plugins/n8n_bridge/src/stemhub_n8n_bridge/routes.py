"""Every HTTP route of the bridge: both API dialects, ``/openapi.json``, ``/docs``, ``/metrics``.

Built once, when the hub builds its HTTP app; the plugin module imports this lazily so
a hub that serves no HTTP never loads the web framework or the API modules. Every route
is a :class:`~stemhub_n8n_bridge.openapi.DocumentedRoute`, and ``/openapi.json`` is made
from this table.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from stemhub import ErrorCode, StemhubError
from stemhub_n8n_bridge import stemsplit_api, v1_api
from stemhub_n8n_bridge._http import Guard, error_json, token_of
from stemhub_n8n_bridge.metrics import CONTENT_TYPE
from stemhub_n8n_bridge.openapi import (
    docs_page,
    documented,
    json_response,
    openapi_document,
    operation,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.routing import BaseRoute

    from stemhub_n8n_bridge.frontend import BridgeFrontend

TAGS = ["Operations"]
_TEXT = {"type": "string"}
OPENAPI = operation(
    "openapi",
    "This document (OpenAPI 3.1)",
    {200: {"description": "The document.", "content": {"application/json": {"schema": {}}}}},
    errors=(),
    tags=TAGS,
    public=True,
)
DOCS = operation(
    "docs",
    "This document as a page",
    {200: {"description": "The page.", "content": {"text/html": {"schema": _TEXT}}}},
    errors=(),
    tags=TAGS,
    public=True,
)
METRICS = operation(
    "metrics",
    "Prometheus metrics (behind 'Authorization: Bearer <metrics token>' when one is set)",
    {200: {"description": "The metrics.", "content": {CONTENT_TYPE: {"schema": _TEXT}}}},
    errors=(),
    tags=TAGS,
    public=True,
) | {"security": [{"bearerAuth": []}, {}]}
METRICS["responses"]["401"] = json_response(
    "ErrorEnvelope", "The hub sets a metrics token and this is not it.", headers=False
)


def meta_routes(bridge: BridgeFrontend, documented_routes: list[BaseRoute]) -> list[BaseRoute]:
    """``/openapi.json`` (of ``documented_routes`` and these), ``/docs`` and ``/metrics``."""
    table: list[BaseRoute] = list(documented_routes)

    def document() -> dict[str, Any]:
        return openapi_document(table, bridge.base_url or None)

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document())

    async def docs(_request: Request) -> Response:
        return HTMLResponse(docs_page(document()))

    token = bridge.settings.metrics_token
    expected = token.get_secret_value().encode() if token is not None else None

    async def metrics(request: Request) -> Response:
        if expected is not None:
            given = (token_of(request) or "").encode()
            if not hmac.compare_digest(given, expected):
                refused = StemhubError(
                    ErrorCode.UNAUTHORIZED, "Send the metrics token as 'Authorization: Bearer'."
                )
                return error_json(refused, "v1", {"WWW-Authenticate": "Bearer"})
        jobs = await bridge.hub.count_by_status()
        outbox = await bridge.outbox.counts()
        return Response(bridge.metrics.render(jobs, outbox), media_type=CONTENT_TYPE)

    own: list[BaseRoute] = [
        documented("/openapi.json", openapi, "GET", OPENAPI),
        documented("/docs", docs, "GET", DOCS),
        documented("/metrics", metrics, "GET", METRICS),
    ]
    table.extend(own)
    return own


def bridge_routes(bridge: BridgeFrontend) -> list[BaseRoute]:
    """The StemSplit-compatible API, the ``/v1`` API and the meta routes, behind one guard."""
    guard = Guard(bridge)
    api = stemsplit_api.routes(bridge, guard) + v1_api.routes(bridge, guard)
    return api + meta_routes(bridge, api)


__all__ = ["bridge_routes", "meta_routes"]
