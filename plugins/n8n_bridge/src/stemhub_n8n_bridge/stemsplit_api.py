"""``/api/v1``: the hosted StemSplit API's contract, served by a self-hosted hub.

A client of ``https://stemsplit.io/api/v1`` (the official SDK, the StemSplit n8n node)
works here by changing the base URL: the same routes, camelCase bodies, statuses,
error codes, rate-limit headers and webhook signatures. Jobs run on whatever backend
the hub picks; each API key sees only its own jobs, uploads and webhooks.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from stemhub.errors import ErrorCode, StemhubError
from stemhub.fetch import FetchPolicy, check_url
from stemhub.models import JobRequest, Origin, OutputFormat, Quality, Source, SourceKind, StemSet
from stemhub.outbox import SigningScheme, Subscription
from stemhub.stemsplit_wire import (
    IDEMPOTENCY_HEADER,
    REVEAL_SECRETS,
    WEBHOOK_EVENTS,
    CreateJobRequest,
    RemoteStatus,
    UploadRequest,
    Webhook,
    WebhookCreateRequest,
)
from stemhub_n8n_bridge._http import Guard, endpoint, invalid, open_endpoint, query_int, read_json
from stemhub_n8n_bridge._http import route as make_route
from stemhub_n8n_bridge.frontend import DIALECT_STEMSPLIT, PLATFORM
from stemhub_n8n_bridge.keys import ApiError, ApiKey
from stemhub_n8n_bridge.wire import core_statuses, parse_stem_set, stemsplit_job

if TYPE_CHECKING:
    from stemhub.models import Job
    from stemhub_n8n_bridge.frontend import BridgeFrontend

PREFIX = "/api/v1"
_YOUTUBE_HOSTS = ("youtube.com", "youtu.be")
UNLIMITED_SECONDS = 2**31 - 1


def idempotency_key(key: ApiKey, header: str | None) -> str | None:
    """The core's (global) idempotency key for one API key's ``Idempotency-Key``."""
    if not header:
        return None
    if len(header) > 255:
        raise invalid("Idempotency-Key is longer than 255 characters.")
    digest = hashlib.sha256(header.encode()).hexdigest()[:40]
    return f"{PLATFORM}:{key.id}:{digest}"


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


def check_callback(bridge: BridgeFrontend, url: str | None, field: str) -> str | None:
    if url is None:
        return None
    try:
        bridge.outbox.check_target(url)
    except StemhubError as error:
        raise StemhubError(error.code, f"{field}: {error.message}") from None
    return url


def source_for_url(bridge: BridgeFrontend, url: str, file_name: str | None) -> Source:
    check_url(url, FetchPolicy.from_settings(bridge.hub.settings))
    host = url.split("/", 3)[2].lower() if url.count("/") >= 2 else ""
    kind = SourceKind.YOUTUBE if host.endswith(_YOUTUBE_HOSTS) else SourceKind.URL
    return Source(kind=kind, url=url, filename=file_name)


async def owned_job(bridge: BridgeFrontend, key: ApiKey, job_id: str) -> Job:
    job = await bridge.hub.get_job(job_id) if job_id.isascii() and job_id.isalnum() else None
    if job is None or job.origin.api_key_id != key.id:
        raise ApiError(ErrorCode.NOT_FOUND, "JOB_NOT_FOUND", f"There is no job {job_id}.")
    return job


def webhook_body(sub: Subscription, *, reveal: bool) -> dict[str, object]:
    def when(value: float | None) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    hook = Webhook(
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
    body = hook.model_dump(mode="json", by_alias=True, context={REVEAL_SECRETS: reveal})
    if not reveal:
        body.pop("secret", None)
    body["disabledReason"] = sub.disabled_reason
    return body


def routes(bridge: BridgeFrontend, guard: Guard) -> list[BaseRoute]:
    hub = bridge.hub

    def snapshot(job: Job) -> dict[str, object]:
        retention_s = hub.settings.retention_hours * 3600
        return stemsplit_job(job, bridge.links(job), retention_s=retention_s)

    async def create_upload(request: Request, key: ApiKey) -> Response:
        body = await read_json(request, UploadRequest)
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
        idem = idempotency_key(key, request.headers.get(IDEMPOTENCY_HEADER))
        if idem is not None:
            existing = await hub.store.get_job_by_idempotency_key(idem)
            if existing is not None:
                return JSONResponse(snapshot(existing), status_code=201)
        body = await read_json(request, CreateJobRequest)
        if (body.upload_key is None) == (body.source_url is None):
            raise invalid("Give exactly one of uploadKey and sourceUrl.")
        stems, quality, output_format = parse_options(
            body.output_type, body.quality, body.output_format, default=StemSet.BOTH
        )
        callback = check_callback(bridge, body.callback_url, "callbackUrl")
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
            source = source_for_url(bridge, body.source_url or "", body.file_name)
        context: dict[str, object] = {"dialect": DIALECT_STEMSPLIT}
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

    async def get_job(request: Request, key: ApiKey) -> Response:
        job = await owned_job(bridge, key, request.path_params["job_id"])
        soon = datetime.now(UTC) + timedelta(minutes=1)
        stale = any(o.url and o.expires_at and o.expires_at < soon for o in job.outputs.values())
        if stale and job.remote_id:
            with contextlib.suppress(StemhubError):
                job = await hub.refresh_links(job.id)
        return JSONResponse(snapshot(job))

    async def list_jobs(request: Request, key: ApiKey) -> Response:
        limit = query_int(request, "limit", 20, 1, 100)
        offset = query_int(request, "offset", 0, 0, 10**9)
        wanted = request.query_params.get("status")
        statuses = None
        if wanted:
            try:
                statuses = core_statuses(RemoteStatus(wanted.strip().upper()))
            except ValueError:
                raise invalid(
                    "status must be PENDING, PROCESSING, COMPLETED, FAILED or EXPIRED."
                ) from None
        jobs = await hub.store.list_jobs(
            statuses=statuses, api_key_id=key.id, limit=limit, offset=offset
        )
        total = await hub.store.count_jobs(statuses=statuses, api_key_id=key.id)
        return JSONResponse(
            {
                "jobs": [snapshot(job) for job in jobs],
                "pagination": {
                    "total": total,
                    "limit": limit,
                    "offset": offset,
                    "hasMore": offset + len(jobs) < total,
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
        body = await read_json(request, WebhookCreateRequest)
        unknown = sorted(set(body.events) - set(WEBHOOK_EVENTS))
        if unknown or not body.events:
            raise invalid(f"events must be a non-empty list of {', '.join(WEBHOOK_EVENTS)}.")
        check_callback(bridge, body.url, "url")
        sub = await bridge.outbox.subscribe(
            key.id, body.url, list(dict.fromkeys(body.events)), scheme=SigningScheme.STEMSPLIT
        )
        return JSONResponse(webhook_body(sub, reveal=True), status_code=201)

    async def list_webhooks(_request: Request, key: ApiKey) -> Response:
        subs = await bridge.outbox.subscriptions(key.id)
        hooks = [webhook_body(s, reveal=False) for s in subs if s.scheme is SigningScheme.STEMSPLIT]
        return JSONResponse({"webhooks": hooks})

    async def delete_webhook(request: Request, key: ApiKey) -> Response:
        if not await bridge.outbox.unsubscribe(request.path_params["webhook_id"], key.id):
            raise StemhubError(ErrorCode.NOT_FOUND, "There is no such webhook.")
        return JSONResponse({"deleted": True})

    return [
        make_route(PREFIX + "/upload", endpoint(guard, "stemsplit", create_upload), "POST"),
        make_route(PREFIX + "/uploads/{upload_key}", open_endpoint("stemsplit", put_upload), "PUT"),
        make_route(PREFIX + "/jobs", endpoint(guard, "stemsplit", create_job), "POST"),
        make_route(PREFIX + "/jobs", endpoint(guard, "stemsplit", list_jobs), "GET"),
        make_route(PREFIX + "/jobs/{job_id}", endpoint(guard, "stemsplit", get_job), "GET"),
        make_route(PREFIX + "/balance", endpoint(guard, "stemsplit", balance), "GET"),
        make_route(PREFIX + "/webhooks", endpoint(guard, "stemsplit", create_webhook), "POST"),
        make_route(PREFIX + "/webhooks", endpoint(guard, "stemsplit", list_webhooks), "GET"),
        make_route(
            PREFIX + "/webhooks/{webhook_id}",
            endpoint(guard, "stemsplit", delete_webhook),
            "DELETE",
        ),
    ]


__all__ = ["PREFIX", "idempotency_key", "owned_job", "parse_options", "routes"]
