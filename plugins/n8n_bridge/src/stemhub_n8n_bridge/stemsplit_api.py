"""``/api/v1``: the hosted StemSplit API's contract, served by a self-hosted hub.

A client of ``https://stemsplit.io/api/v1`` (the official SDK, the StemSplit n8n node)
works here by changing the base URL: the same routes, camelCase bodies, statuses,
error codes, rate-limit headers and webhook signatures. Jobs run on whatever backend
the hub picks; each API key sees only its own jobs, uploads and webhooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from stemhub import (
    ErrorCode,
    JobRequest,
    JobStatus,
    Origin,
    OutputFormat,
    Quality,
    SigningScheme,
    Source,
    SourceKind,
    StemhubError,
    StemSet,
    Subscription,
    stemsplit_wire,
)
from stemhub_n8n_bridge import handlers
from stemhub_n8n_bridge._http import (
    MAX_URL_CHARS,
    Guard,
    Handler,
    check_length,
    check_metadata,
    endpoint,
    invalid,
    open_endpoint,
    read_json,
)
from stemhub_n8n_bridge.frontend import DIALECT_STEMSPLIT, PLATFORM
from stemhub_n8n_bridge.keys import ApiError, ApiKey
from stemhub_n8n_bridge.openapi import (
    BINARY,
    GUARDED,
    documented,
    json_body,
    json_response,
    link,
    operation,
    query_enum,
    query_int,
    query_text,
    with_links,
)
from stemhub_n8n_bridge.wire import core_statuses, parse_stem_set, stemsplit_job

if TYPE_CHECKING:
    from stemhub import Job
    from stemhub_n8n_bridge.frontend import BridgeFrontend

PREFIX = "/api/v1"
UNLIMITED_SECONDS = 2**31 - 1
_LISTED = [
    stemsplit_wire.RemoteStatus.PENDING,
    stemsplit_wire.RemoteStatus.PROCESSING,
    stemsplit_wire.RemoteStatus.COMPLETED,
    stemsplit_wire.RemoteStatus.FAILED,
    stemsplit_wire.RemoteStatus.EXPIRED,
]
"""The statuses ``GET /jobs?status=`` filters by."""
WITH_BODY = (400, 408)
"""What reading a body can answer here: too large is 400 ``FILE_TOO_LARGE``, as on the
hosted API, so the SDK raises the same error class."""


def parse_options(
    output_type: str | None, quality: str | None, output_format: str | None, *, default: StemSet
) -> tuple[StemSet, Quality, OutputFormat]:
    try:
        stems = parse_stem_set(output_type, default)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    try:
        chosen_quality = Quality((quality or "BALANCED").strip().upper())
    except ValueError:
        raise invalid("quality must be FAST, BALANCED or BEST.") from None
    try:
        chosen_format = OutputFormat((output_format or "MP3").strip().upper())
    except ValueError:
        raise invalid("outputFormat must be WAV, MP3 or FLAC.") from None
    return stems, chosen_quality, chosen_format


def webhook_body(sub: Subscription, *, reveal: bool) -> dict[str, object]:
    when = handlers.when
    hook = stemsplit_wire.Webhook(
        id=sub.id,
        url=sub.target_url,
        events=sub.events,
        is_active=sub.active,
        fail_count=sub.fail_count,
        last_error=sub.disabled_reason or sub.last_error,
        last_called_at=when(sub.last_called_at),
        created_at=when(sub.created_at),
        secret=sub.secret if reveal else None,
    )
    body = hook.model_dump(
        mode="json", by_alias=True, context={stemsplit_wire.REVEAL_SECRETS: reveal}
    )
    if not reveal:
        body.pop("secret", None)
    body["disabledReason"] = sub.disabled_reason
    return body


TAGS = ["StemSplit-compatible"]
_JOB_LINKS = {"GetJob": link("getJob", job_id="$response.body#/id")}
CREATE_UPLOAD = operation(
    "createUpload",
    "Get a presigned URL to PUT an audio file to",
    {200: json_response("UploadTicket", "The ticket.")},
    errors=(*GUARDED, *WITH_BODY),
    tags=TAGS,
    body=json_body("UploadRequest"),
)
PUT_UPLOAD = operation(
    "putUpload",
    "Upload the bytes (the presigned URL; no API key)",
    {200: {"description": "Stored."}},
    errors=(*WITH_BODY, 403, 404, 409),
    tags=TAGS,
    public=True,
    parameters=[query_text("expires", required=True), query_text("signature", required=True)],
    body={"required": True, "content": {"application/octet-stream": BINARY}},
)
CREATE_JOB = operation(
    "createJob",
    "Create a separation job from an upload key or a URL",
    {201: with_links(json_response("BridgeJob", "The job."), **_JOB_LINKS)},
    errors=(*GUARDED, *WITH_BODY, 409, 422),
    tags=TAGS,
    parameters=[
        {
            "name": stemsplit_wire.IDEMPOTENCY_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
        }
    ],
    body=json_body("CreateJobRequest"),
)
LIST_JOBS = operation(
    "listJobs",
    "List this key's jobs, newest first",
    {200: json_response("JobList", "One page.")},
    errors=(*GUARDED, 400),
    tags=TAGS,
    parameters=[
        query_int("limit", 20, 1, handlers.MAX_PAGE),
        query_int("offset", 0, 0, 10**9),
        query_enum("status", [s.value for s in _LISTED]),
    ],
)
GET_JOB = operation(
    "getJob",
    "A job, with fresh stem links and its result page once it is COMPLETED",
    {200: json_response("BridgeJob", "The job.")},
    errors=(*GUARDED, 404),
    tags=TAGS,
)
BALANCE = operation(
    "getBalance",
    "Credit balance (a self-hosted hub has no credits: unlimited)",
    {200: json_response("Balance", "The balance.")},
    errors=GUARDED,
    tags=TAGS,
)
CREATE_WEBHOOK = operation(
    "createWebhook",
    "Subscribe a URL to job.completed / job.failed",
    {
        201: with_links(
            json_response("Webhook", "The subscription, with its secret."),
            DeleteWebhook=link("deleteWebhook", webhook_id="$response.body#/id"),
        )
    },
    errors=(*GUARDED, *WITH_BODY, 422),
    tags=TAGS,
    body=json_body("WebhookCreateRequest"),
)
LIST_WEBHOOKS = operation(
    "listWebhooks",
    "This key's webhook subscriptions",
    {200: json_response("WebhookList", "The subscriptions.")},
    errors=GUARDED,
    tags=TAGS,
)
DELETE_WEBHOOK = operation(
    "deleteWebhook",
    "Remove a webhook subscription",
    {200: json_response("Deleted", "Removed.")},
    errors=(*GUARDED, 404),
    tags=TAGS,
)


def _missing(job_id: str) -> StemhubError:
    return ApiError(ErrorCode.NOT_FOUND, "JOB_NOT_FOUND", f"There is no job {job_id}.")


def _statuses(word: str) -> list[JobStatus]:
    return core_statuses(stemsplit_wire.RemoteStatus(word))


def routes(bridge: BridgeFrontend, guard: Guard) -> list[BaseRoute]:
    hub = bridge.hub

    def snapshot(job: Job) -> dict[str, object]:
        retention_s = hub.settings.retention_hours * 3600
        links = bridge.links(job)
        page = handlers.page_url(bridge, job, links)
        return stemsplit_job(job, links, retention_s=retention_s, page_url=page)

    async def create_upload(request: Request, key: ApiKey) -> Response:
        body = await read_json(request, stemsplit_wire.UploadRequest)
        if not body.filename.strip() or len(body.filename) > 255:
            raise invalid("filename must be 1 to 255 characters.")
        ticket = await bridge.uploads.ticket(
            key.id, body.filename, body.content_type, bridge.base_url
        )
        return JSONResponse(ticket)

    async def put_upload(request: Request) -> Response:
        await bridge.uploads.receive_put(request)
        return Response(status_code=200)

    async def create_job(request: Request, key: ApiKey) -> Response:
        idem = handlers.idempotency_key(key, request.headers.get(stemsplit_wire.IDEMPOTENCY_HEADER))
        body = await read_json(request, stemsplit_wire.CreateJobRequest)
        params = body.model_dump(mode="json", exclude={"upload_key"})
        uploaded = (
            await bridge.uploads.describe(key.id, body.upload_key) if body.upload_key else None
        )
        print_ = handlers.fingerprint(params, uploaded)
        existing = await handlers.replay(bridge, idem, print_)
        if existing is not None:
            return JSONResponse(snapshot(existing), status_code=201)
        if (body.upload_key is None) == (body.source_url is None):
            raise invalid("Give exactly one of uploadKey and sourceUrl.")
        check_length(body.file_name, "fileName")
        check_length(body.upload_key, "uploadKey", 64)
        check_length(body.source_url, "sourceUrl", MAX_URL_CHARS)
        check_length(body.callback_url, "callbackUrl", MAX_URL_CHARS)
        check_metadata(body.metadata)
        stems, quality, output_format = parse_options(
            body.output_type, body.quality, body.output_format, default=StemSet.BOTH
        )
        callback = handlers.check_callback(bridge, body.callback_url, "callbackUrl")
        if body.upload_key is not None:
            upload = await bridge.uploads.take(key.id, body.upload_key)
            source = Source(
                kind=SourceKind.FILE,
                path=str(upload.path),
                filename=body.file_name or upload.filename,
                content_type=upload.content_type,
                size_bytes=upload.size_bytes,
            )
        else:
            source = handlers.source_for_url(bridge, body.source_url or "", body.file_name)
        context: dict[str, object] = {"dialect": DIALECT_STEMSPLIT, handlers.FINGERPRINT: print_}
        if callback:
            context["callback_url"] = callback
        job = await hub.submit(
            JobRequest(
                source=source,
                stems=stems,
                output_format=output_format,
                quality=quality,
                origin=Origin(platform=PLATFORM, api_key_id=key.id, context=context),
                metadata=body.metadata or {},
                idempotency_key=idem,
            )
        )
        return JSONResponse(snapshot(job), status_code=201)

    async def render(job: Job) -> tuple[bytes, bool]:
        soon = datetime.now(UTC) + timedelta(minutes=1)
        stale = any(o.url and o.expires_at and o.expires_at < soon for o in job.outputs.values())
        if stale and job.remote_id:
            with contextlib.suppress(StemhubError):
                job = await hub.refresh_links(job.id)
        return bytes(JSONResponse(snapshot(job)).body), not stale

    async def get_job(request: Request, key: ApiKey) -> Response:
        return await handlers.read_job(bridge, "stemsplit", request, key, render, _missing)

    async def list_jobs(request: Request, key: ApiKey) -> Response:
        words = ", ".join(s.value for s in _LISTED)
        statuses = handlers.status_filter(request, _statuses, f"one of {words}")
        page = await handlers.page_of_jobs(bridge, request, key, statuses)
        return JSONResponse(
            {
                "jobs": [snapshot(job) for job in page.jobs],
                "pagination": {
                    "total": page.total,
                    "limit": page.limit,
                    "offset": page.offset,
                    "hasMore": page.has_more,
                },
            }
        )

    async def balance(_request: Request, key: ApiKey) -> Response:
        seconds = UNLIMITED_SECONDS
        formatted = "unlimited (self-hosted)"
        return JSONResponse(
            {
                "balanceSeconds": seconds,
                "balanceMinutes": seconds // 60,
                "balanceFormatted": formatted,
                "updatedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "keyName": key.name,
            }
        )

    async def create_webhook(request: Request, key: ApiKey) -> Response:
        body = await read_json(request, stemsplit_wire.WebhookCreateRequest)
        check_length(body.url, "url", MAX_URL_CHARS)
        events = handlers.check_events(body.events)
        handlers.check_callback(bridge, body.url, "url")
        sub = await bridge.outbox.subscribe(
            key.id, body.url, events, scheme=SigningScheme.STEMSPLIT
        )
        return JSONResponse(webhook_body(sub, reveal=True), status_code=201)

    async def list_webhooks(_request: Request, key: ApiKey) -> Response:
        subs = await bridge.outbox.subscriptions(key.id)
        hooks = [webhook_body(s, reveal=False) for s in subs if s.scheme is SigningScheme.STEMSPLIT]
        return JSONResponse({"webhooks": hooks})

    async def delete_webhook(request: Request, key: ApiKey) -> Response:
        webhook_id = request.path_params["webhook_id"]
        return await handlers.unsubscribe(bridge, key, webhook_id, "webhook")

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return endpoint(guard, "stemsplit", handler)

    put = open_endpoint("stemsplit", put_upload)
    return [
        documented(PREFIX + "/upload", api(create_upload), "POST", CREATE_UPLOAD),
        documented(PREFIX + "/uploads/{upload_key}", put, "PUT", PUT_UPLOAD),
        documented(PREFIX + "/jobs", api(create_job), "POST", CREATE_JOB),
        documented(PREFIX + "/jobs", api(list_jobs), "GET", LIST_JOBS),
        documented(PREFIX + "/jobs/{job_id}", api(get_job), "GET", GET_JOB),
        documented(PREFIX + "/balance", api(balance), "GET", BALANCE),
        documented(PREFIX + "/webhooks", api(create_webhook), "POST", CREATE_WEBHOOK),
        documented(PREFIX + "/webhooks", api(list_webhooks), "GET", LIST_WEBHOOKS),
        documented(
            PREFIX + "/webhooks/{webhook_id}", api(delete_webhook), "DELETE", DELETE_WEBHOOK
        ),
    ]


__all__ = ["PREFIX", "parse_options", "routes"]
