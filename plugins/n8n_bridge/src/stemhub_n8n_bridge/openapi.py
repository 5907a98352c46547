"""The OpenAPI 3.1 document of the bridge (``/openapi.json``), built from its route table.

Every route of the bridge is a :class:`DocumentedRoute`: its path and method come from
the route itself, its operation (summary, parameters, body, every status it can answer,
links to the next call) is written beside the handler. So a path cannot be documented
and not served, or served and not documented (``tests/bridge/test_openapi_routes.py``
checks the served app against the document). Schemas come from the pydantic models the
handlers read and write; a schemathesis run checks the live answers against them.
Webhook bodies are described in the 3.1 ``webhooks`` section. The docs page (``/docs``)
is rendered on the server from the document: no script, no CDN.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import Route

from stemhub import __version__, stemsplit_wire
from stemhub_n8n_bridge.wire import (
    BridgeJob,
    HookCreate,
    SplitOptions,
    V1Event,
    V1Hook,
    V1Job,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


class Deleted(BaseModel):
    deleted: bool


class V1JobList(BaseModel):
    jobs: list[V1Job]
    total: int
    limit: int
    offset: int
    has_more: bool


class V1HookList(BaseModel):
    hooks: list[V1Hook]


_MODELS: list[type[BaseModel]] = [
    stemsplit_wire.ErrorEnvelope,
    stemsplit_wire.UploadRequest,
    stemsplit_wire.UploadTicket,
    stemsplit_wire.CreateJobRequest,
    BridgeJob,
    stemsplit_wire.JobList,
    stemsplit_wire.Balance,
    stemsplit_wire.WebhookCreateRequest,
    stemsplit_wire.Webhook,
    stemsplit_wire.WebhookList,
    stemsplit_wire.WebhookEvent,
    Deleted,
    SplitOptions,
    V1Job,
    V1JobList,
    HookCreate,
    V1Hook,
    V1HookList,
    V1Event,
]

_DESCRIPTIONS = {
    "BridgeJob": "A job in the StemSplit dialect (camelCase; outputs and resultPageUrl "
    "only when COMPLETED).",
    "Webhook": "A webhook subscription; `secret` only in the answer that created it.",
    "WebhookEvent": "A StemSplit webhook delivery, signed `X-Webhook-Signature: sha256=<hex>`.",
    "ErrorEnvelope": "Every error: `{error: {code, message}}`.",
}

RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests per window."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Left in window."},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Window end (epoch s)."},
}
BINARY = {"schema": {"type": "string", "format": "binary"}}

GUARDED = (401, 403, 429, 503)
"""What every endpoint behind an API key can answer: no key, revoked key, rate limit, busy store."""
WITH_BODY = (400, 408, 413)
"""What reading a request body can answer: malformed, too slow, too large."""

_ERROR_WORDS = {
    400: "The request is malformed (or, on /api/v1, the file is too large or too long).",
    401: "No API key, or not a valid one.",
    403: "The API key was revoked, or the link is not valid.",
    404: "Not found (or not yours).",
    408: "The request body did not arrive in time.",
    409: "Conflict: the job is not finished, the upload was used, or the Idempotency-Key "
    "was used with another request.",
    410: "The stems were deleted after the retention period.",
    413: "The upload or body is too large.",
    415: "The body's content type is not accepted.",
    422: "The request is well formed but cannot be done (blocked URL, unsupported stems).",
    429: "Too many requests (or the key's quota is used up); see Retry-After.",
    503: "The hub is busy; see Retry-After.",
}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def json_response(name: str, description: str, *, headers: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ref(name)}},
    }
    if headers:
        out["headers"] = RATE_HEADERS
    return out


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: the next call, its parameters read from this answer."""
    return {"operationId": operation_id, "parameters": parameters}


def with_links(response: dict[str, Any], **links: dict[str, Any]) -> dict[str, Any]:
    return {**response, "links": links}


def query_int(name: str, default: int, low: int, high: int) -> dict[str, Any]:
    schema = {"type": "integer", "default": default, "minimum": low, "maximum": high}
    return {"name": name, "in": "query", "required": False, "schema": schema}


def query_enum(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"enum": values}}


def query_text(name: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string"}}


def json_body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def operation(
    operation_id: str,
    summary: str,
    responses: Mapping[int, dict[str, Any]],
    *,
    errors: Iterable[int],
    tags: list[str],
    description: str | None = None,
    parameters: Iterable[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    """One operation; ``errors`` are every error status the route can answer, in the envelope.

    There is no ``default`` response: an answer whose status is not listed here is a bug
    that the schemathesis run reports.
    """
    op: dict[str, Any] = {"tags": tags, "operationId": operation_id, "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = body
    if public:
        op["security"] = []
    out = {str(status): response for status, response in responses.items()}
    for status in sorted(set(errors)):
        out[str(status)] = json_response("ErrorEnvelope", _ERROR_WORDS[status])
    op["responses"] = out
    return op


class DocumentedRoute(Route):
    """A route of one method that carries its OpenAPI operation."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        method: str,
        spec: dict[str, Any],
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method.lower()
        self.spec = spec

    @property
    def openapi_path(self) -> str:
        """The path with Starlette's converters dropped (``{name:path}`` is ``{name}``)."""
        return _PARAM.sub(r"{\1}", self.path)


def documented(
    path: str,
    endpoint: Callable[[Request], Awaitable[Response]],
    method: str,
    spec: dict[str, Any],
) -> DocumentedRoute:
    return DocumentedRoute(path, endpoint, method, spec)


_PATH_WORDS = {
    "job_id": "The job id.",
    "stem": "vocals, drums, bass, other...",
    "hook_id": "The hook id.",
    "webhook_id": "The subscription id.",
    "upload_key": "The upload key.",
}


def _with_path_params(route: DocumentedRoute) -> dict[str, Any]:
    op = dict(route.spec)
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    names = [n for n in _PARAM.findall(route.path) if n not in declared]
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_WORDS.get(name, name),
            "schema": {"type": "string"},
        }
        for name in names
    ]
    if params or "parameters" in op:
        op["parameters"] = params + list(op.get("parameters", []))
    return op


def paths_of(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The ``paths`` of the document: one operation per documented route."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if isinstance(route, DocumentedRoute):
            item = paths.setdefault(route.openapi_path, {})
            if route.method in item:
                raise ValueError(f"two routes for {route.method.upper()} {route.path}")
            item[route.method] = _with_path_params(route)
    return paths


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "serialization") for model in _MODELS], ref_template=_REF, by_alias=True
    )
    schemas: dict[str, Any] = top["$defs"]
    for name, text in _DESCRIPTIONS.items():
        schemas[name]["description"] = text
    return schemas


def _webhooks() -> dict[str, Any]:
    def post(schema: str, summary: str, description: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "description": description,
                "requestBody": {"content": {"application/json": {"schema": ref(schema)}}},
                "responses": {"200": {"description": "Any 2xx acknowledges; 410 unsubscribes."}},
            }
        }

    return {
        "stemsplitJobEvent": post(
            "WebhookEvent",
            "job.completed / job.failed for /api/v1 (callbackUrl and /api/v1/webhooks)",
            "Signed `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>`; "
            "`X-Webhook-Id` is stable across retries.",
        ),
        "v1JobEvent": post(
            "V1Event",
            "job.completed / job.failed for /v1 (callback_url and /v1/hooks)",
            "Standard Webhooks: `webhook-id` (stable across retries), `webhook-timestamp`, "
            "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed by the "
            "base64-decoded part of the `whsec_` secret. Reject timestamps older than 5 "
            "minutes and ids already seen.",
        ),
    }


def openapi_document(routes: Iterable[BaseRoute], server_url: str | None = None) -> dict[str, Any]:
    """The document of ``routes``; ``server_url`` becomes its one server when known."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "stemhub bridge",
            "version": __version__,
            "description": (
                "Music stem separation over HTTP. `/v1` is shaped for n8n and Zapier; "
                "`/api/v1` is the hosted StemSplit API's contract, so StemSplit clients "
                "work by changing only the base URL. Send the API key as "
                "`Authorization: Bearer sk_live_...` or `X-API-Key`."
            ),
        },
        "paths": paths_of(routes),
        "webhooks": _webhooks(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "tags": [
            {"name": "n8n / Zapier", "description": "Binary in and out, wait or webhooks."},
            {"name": "StemSplit-compatible", "description": "The hosted API's contract."},
            {"name": "Operations", "description": "The document, its page and metrics."},
        ],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def docs_page(doc: dict[str, Any]) -> str:
    """A plain HTML page listing every operation of ``doc`` (no scripts)."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(doc['info']['title'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5}code{background:#f3f3f3;padding:0 .2rem}"
        ".op{border-left:4px solid #888;padding:.2rem .8rem;margin:.8rem 0}"
        ".m{font-weight:700;text-transform:uppercase;margin-right:.5rem}</style></head><body>",
        f"<h1>{esc(doc['info']['title'])} {esc(doc['info']['version'])}</h1>",
        f"<p>{esc(doc['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>",
    ]
    for tag in doc["tags"]:
        parts.append(f"<h2>{esc(tag['name'])}</h2><p>{esc(tag['description'])}</p>")
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if tag["name"] not in op.get("tags", []):
                    continue
                parts.append(
                    f"<div class='op'><span class='m'>{esc(method)}</span><code>{esc(path)}</code>"
                    f"<div>{esc(op.get('summary', ''))}</div>"
                )
                if op.get("description"):
                    parts.append(f"<div>{esc(op['description'])}</div>")
                codes = ", ".join(k for k in op.get("responses", {}) if k != "default")
                parts.append(f"<div><small>responses: {esc(codes)}</small></div></div>")
    parts.append("<h2>Webhooks</h2>")
    for name, item in doc["webhooks"].items():
        post = item["post"]
        parts.append(
            f"<div class='op'><code>{esc(name)}</code><div>{esc(post['summary'])}</div>"
            f"<div>{esc(post['description'])}</div></div>"
        )
    parts.append("</body></html>")
    return "".join(parts)


__all__ = [
    "BINARY",
    "GUARDED",
    "RATE_HEADERS",
    "WITH_BODY",
    "DocumentedRoute",
    "docs_page",
    "documented",
    "json_body",
    "json_response",
    "link",
    "openapi_document",
    "operation",
    "paths_of",
    "query_enum",
    "query_int",
    "query_text",
    "ref",
    "with_links",
]
