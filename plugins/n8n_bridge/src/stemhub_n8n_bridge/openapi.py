"""The OpenAPI 3.1 document of the bridge (``/openapi.json``) and its docs page (``/docs``).

Schemas come from the same pydantic models the handlers read and write (the StemSplit
wire models of :mod:`stemhub.stemsplit_wire`, the ``/v1`` models of this plugin), so the
document cannot drift from the code; a schemathesis run in the test suite checks the
live answers against it. Webhook bodies are described in the 3.1 ``webhooks`` section.
The docs page is rendered on the server from the document: no script, no CDN.
"""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stemhub import __version__
from stemhub.stemsplit_wire import (
    Balance,
    CreateJobRequest,
    ErrorEnvelope,
    JobList,
    RemoteJob,
    UploadRequest,
    UploadTicket,
    Webhook,
    WebhookCreateRequest,
    WebhookEvent,
    WebhookList,
)
from stemhub_n8n_bridge.v1_api import HookCreate, SplitOptions, V1Hook
from stemhub_n8n_bridge.wire import V1Event, V1Job

_REF = "#/components/schemas/{model}"


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
    ErrorEnvelope,
    UploadRequest,
    UploadTicket,
    CreateJobRequest,
    RemoteJob,
    JobList,
    Balance,
    WebhookCreateRequest,
    Webhook,
    WebhookList,
    WebhookEvent,
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
    "RemoteJob": "A job in the StemSplit dialect (camelCase; outputs only when COMPLETED).",
    "Webhook": "A webhook subscription; `secret` only in the answer that created it.",
    "WebhookEvent": "A StemSplit webhook delivery, signed `X-Webhook-Signature: sha256=<hex>`.",
    "ErrorEnvelope": "Every error: `{error: {code, message}}`.",
}

_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests per window."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Left in window."},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Window end (epoch s)."},
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "serialization") for model in _MODELS], ref_template=_REF, by_alias=True
    )
    schemas: dict[str, Any] = top["$defs"]
    for name, text in _DESCRIPTIONS.items():
        schemas[name]["description"] = text
    return schemas


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str, description: str, *, headers: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
    }
    if headers:
        out["headers"] = _RATE_HEADERS
    return out


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "The request is malformed.",
        401: "No API key, or not a valid one.",
        403: "The API key was revoked, or the link is not valid.",
        404: "Not found (or not yours).",
        409: "The job is not in a state that allows this.",
        413: "The upload or body is too large.",
        415: "The body's content type is not accepted.",
        422: "The request is well formed but cannot be done (blocked URL, unsupported stems).",
        429: "Too many requests; see Retry-After.",
    }
    out = {str(s): _json("ErrorEnvelope", words[s]) for s in statuses}
    out["default"] = _json("ErrorEnvelope", "Any other error.")
    return out


_AUTH_ERRORS = (400, 401, 403, 429)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query_int(name: str, default: int, low: int, high: int) -> dict[str, Any]:
    schema = {"type": "integer", "default": default, "minimum": low, "maximum": high}
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _query_enum(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"enum": values}}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _stemsplit_paths() -> dict[str, Any]:
    tags = ["StemSplit-compatible"]
    job_id = _path_param("jobId", "The job id.")
    return {
        "/api/v1/upload": {
            "post": {
                "tags": tags,
                "operationId": "createUpload",
                "summary": "Get a presigned URL to PUT an audio file to",
                "requestBody": _body("UploadRequest"),
                "responses": {"200": _json("UploadTicket", "The ticket.")} | _errors(*_AUTH_ERRORS),
            }
        },
        "/api/v1/uploads/{uploadKey}": {
            "put": {
                "tags": tags,
                "operationId": "putUpload",
                "summary": "Upload the bytes (the presigned URL; no API key)",
                "security": [],
                "parameters": [
                    _path_param("uploadKey", "The upload key."),
                    {
                        "name": "expires",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "signature",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "responses": {"200": {"description": "Stored."}} | _errors(400, 403, 404, 413),
            }
        },
        "/api/v1/jobs": {
            "post": {
                "tags": tags,
                "operationId": "createJob",
                "summary": "Create a separation job from an upload key or a URL",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
                "requestBody": _body("CreateJobRequest"),
                "responses": {"201": _json("RemoteJob", "The job.")}
                | _errors(*_AUTH_ERRORS, 404, 413, 422),
            },
            "get": {
                "tags": tags,
                "operationId": "listJobs",
                "summary": "List this key's jobs, newest first",
                "parameters": [
                    _query_int("limit", 20, 1, 100),
                    _query_int("offset", 0, 0, 10**9),
                    _query_enum(
                        "status", ["PENDING", "PROCESSING", "COMPLETED", "FAILED", "EXPIRED"]
                    ),
                ],
                "responses": {"200": _json("JobList", "One page.")} | _errors(*_AUTH_ERRORS),
            },
        },
        "/api/v1/jobs/{jobId}": {
            "get": {
                "tags": tags,
                "operationId": "getJob",
                "summary": "A job, with fresh stem links once it is COMPLETED",
                "parameters": [job_id],
                "responses": {"200": _json("RemoteJob", "The job.")} | _errors(*_AUTH_ERRORS, 404),
            }
        },
        "/api/v1/balance": {
            "get": {
                "tags": tags,
                "operationId": "getBalance",
                "summary": "Credit balance (a self-hosted hub has no credits: unlimited)",
                "responses": {"200": _json("Balance", "The balance.")} | _errors(*_AUTH_ERRORS),
            }
        },
        "/api/v1/webhooks": {
            "post": {
                "tags": tags,
                "operationId": "createWebhook",
                "summary": "Subscribe a URL to job.completed / job.failed",
                "requestBody": _body("WebhookCreateRequest"),
                "responses": {"201": _json("Webhook", "The subscription, with its secret.")}
                | _errors(*_AUTH_ERRORS, 422),
            },
            "get": {
                "tags": tags,
                "operationId": "listWebhooks",
                "summary": "This key's webhook subscriptions",
                "responses": {"200": _json("WebhookList", "The subscriptions.")}
                | _errors(*_AUTH_ERRORS),
            },
        },
        "/api/v1/webhooks/{webhookId}": {
            "delete": {
                "tags": tags,
                "operationId": "deleteWebhook",
                "summary": "Remove a webhook subscription",
                "parameters": [_path_param("webhookId", "The subscription id.")],
                "responses": {"200": _json("Deleted", "Removed.")} | _errors(*_AUTH_ERRORS, 404),
            }
        },
    }


def _split_form() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The audio."},
            "url": text,
            "stems": text,
            "output_format": text,
            "quality": text,
            "callback_url": text,
            "wait": text,
            "metadata": {"type": "string", "description": "A JSON object, as text."},
            "filename": text,
        },
    }


def _v1_paths() -> dict[str, Any]:
    tags = ["n8n / Zapier"]
    job_id = _path_param("jobId", "The job id.")
    v1_statuses = ["queued", "running", "completed", "failed", "expired", "cancelled"]
    split_query = [
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "schema": {"type": "number", "minimum": 0},
        },
        {"name": "filename", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "/v1/split": {
            "post": {
                "tags": tags,
                "operationId": "split",
                "summary": "Split a song: a file (multipart or raw bytes) or JSON {url}",
                "description": (
                    "With `wait` (seconds), answers 200 with the finished job if it ends in "
                    "time, else 202 with the job and a Location to poll. `callback_url` gets "
                    "a signed job.completed / job.failed webhook (Standard Webhooks)."
                ),
                "parameters": split_query,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("SplitOptions")},
                        "multipart/form-data": {"schema": _split_form()},
                        "audio/mpeg": binary,
                        "audio/wav": binary,
                        "application/octet-stream": binary,
                    },
                },
                "responses": {
                    "200": _json("V1Job", "The job ended within `wait`."),
                    "202": _json("V1Job", "Accepted; poll Location or wait for the webhook.")
                    | {
                        "headers": _RATE_HEADERS
                        | {"Location": {"schema": {"type": "string"}, "required": True}}
                    },
                }
                | _errors(*_AUTH_ERRORS, 404, 413, 415, 422),
            }
        },
        "/v1/jobs": {
            "get": {
                "tags": tags,
                "operationId": "listJobsV1",
                "summary": "This key's jobs, newest first (a polling trigger's list)",
                "parameters": [
                    _query_int("limit", 20, 1, 100),
                    _query_int("offset", 0, 0, 10**9),
                    _query_enum("status", v1_statuses),
                ],
                "responses": {"200": _json("V1JobList", "One page.")} | _errors(*_AUTH_ERRORS),
            }
        },
        "/v1/jobs/{jobId}": {
            "get": {
                "tags": tags,
                "operationId": "getJobV1",
                "summary": "A job",
                "parameters": [job_id],
                "responses": {"200": _json("V1Job", "The job.")} | _errors(*_AUTH_ERRORS, 404),
            }
        },
        "/v1/jobs/{jobId}/stems/{stem}": {
            "get": {
                "tags": tags,
                "operationId": "downloadStem",
                "summary": "One stem as a file (Content-Disposition names it)",
                "parameters": [job_id, _path_param("stem", "vocals, drums, bass, other...")],
                "responses": {
                    "200": {
                        "description": "The audio.",
                        "headers": _RATE_HEADERS,
                        "content": {
                            "audio/wav": binary,
                            "audio/mpeg": binary,
                            "audio/flac": binary,
                        },
                    },
                    "307": {"description": "The stem is kept elsewhere; follow Location."},
                }
                | _errors(*_AUTH_ERRORS, 404, 409),
            }
        },
        "/v1/jobs/{jobId}/stems.zip": {
            "get": {
                "tags": tags,
                "operationId": "downloadStemsZip",
                "summary": "Every stem in one ZIP, streamed",
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "The ZIP.",
                        "headers": _RATE_HEADERS,
                        "content": {"application/zip": binary},
                    }
                }
                | _errors(*_AUTH_ERRORS, 404, 409),
            }
        },
        "/v1/hooks": {
            "post": {
                "tags": tags,
                "operationId": "subscribeHook",
                "summary": "REST hooks: subscribe a target URL",
                "requestBody": _body("HookCreate"),
                "responses": {"201": _json("V1Hook", "The hook, with its signing secret.")}
                | _errors(*_AUTH_ERRORS, 422),
            },
            "get": {
                "tags": tags,
                "operationId": "listHooks",
                "summary": "This key's hooks (disabled ones say why)",
                "responses": {"200": _json("V1HookList", "The hooks.")} | _errors(*_AUTH_ERRORS),
            },
        },
        "/v1/hooks/{hookId}": {
            "get": {
                "tags": tags,
                "operationId": "getHook",
                "summary": "One hook",
                "parameters": [_path_param("hookId", "The hook id.")],
                "responses": {"200": _json("V1Hook", "The hook.")} | _errors(*_AUTH_ERRORS, 404),
            },
            "delete": {
                "tags": tags,
                "operationId": "unsubscribeHook",
                "summary": "REST hooks: unsubscribe",
                "parameters": [_path_param("hookId", "The hook id.")],
                "responses": {"200": _json("Deleted", "Removed.")} | _errors(*_AUTH_ERRORS, 404),
            },
        },
    }


def _webhooks() -> dict[str, Any]:
    def post(schema: str, summary: str, description: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "description": description,
                "requestBody": {"content": {"application/json": {"schema": _ref(schema)}}},
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


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The whole document; ``server_url`` becomes its one server when known."""
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
        "paths": _stemsplit_paths() | _v1_paths(),
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


__all__ = ["docs_page", "openapi_document"]
