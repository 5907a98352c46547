"""``/v1``: the surface shaped for n8n and Zapier.

No-code tools have an HTTP node, an API key field, binary data in and out, and about 30
seconds before an action times out. So ``POST /v1/split`` takes what such a node can
send (a multipart form with the file, the raw bytes, or JSON with a URL), waits up to
``wait`` seconds and answers with the finished job, or answers 202 with the job and a
``Location`` to poll; a per-job ``callback_url`` or a REST-hook subscription
(``POST /v1/hooks``, ``DELETE /v1/hooks/{id}``) ends the wait instead. Webhooks are
signed with Standard Webhooks headers.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import JobRequest, JobStatus, Origin, Source, SourceKind
from stemhub.outbox import SigningScheme, Subscription
from stemhub.stemsplit_wire import WEBHOOK_EVENTS
from stemhub_n8n_bridge._http import Guard, endpoint, invalid, query_int, read_json
from stemhub_n8n_bridge._http import route as make_route
from stemhub_n8n_bridge.downloads import stem_download, stems_zip
from stemhub_n8n_bridge.frontend import DIALECT_V1, PLATFORM
from stemhub_n8n_bridge.keys import ApiKey
from stemhub_n8n_bridge.stemsplit_api import check_callback, idempotency_key, source_for_url
from stemhub_n8n_bridge.uploads import Received, discard
from stemhub_n8n_bridge.wire import v1_job

if TYPE_CHECKING:
    from stemhub.models import Job
    from stemhub_n8n_bridge.frontend import BridgeFrontend

PREFIX = "/v1"
_BINARY_TYPES = ("audio/", "video/", "application/octet-stream")


class SplitOptions(BaseModel):
    """What ``POST /v1/split`` accepts, as JSON, form fields or query parameters."""

    model_config = ConfigDict(extra="ignore")

    url: str | None = Field(default=None, max_length=8192)
    stems: str | list[str] = "FOUR_STEMS"
    output_format: str = "MP3"
    quality: str = "BALANCED"
    callback_url: str | None = Field(default=None, max_length=8192)
    wait: float = Field(default=0.0, ge=0, le=3600)
    metadata: dict[str, Any] = Field(default_factory=dict)
    filename: str | None = Field(default=None, max_length=255)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError("metadata must be a JSON object") from None
        return value

    @field_validator("url", "callback_url", "filename", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class HookCreate(BaseModel):
    """``POST /v1/hooks`` (the REST hooks subscribe call of Zapier and n8n triggers)."""

    target_url: str = Field(max_length=8192)
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))


class V1Hook(BaseModel):
    id: str
    target_url: str
    events: list[str]
    active: bool
    fail_count: int
    last_error: str | None
    disabled_reason: str | None
    last_called_at: datetime | None
    created_at: datetime
    secret: str | None = Field(
        default=None, description="Only in the answer to the POST that created the hook."
    )


def hook_body(sub: Subscription, *, reveal: bool) -> dict[str, Any]:
    def when(value: float | None) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    return V1Hook(
        id=sub.id,
        target_url=sub.target_url,
        events=sub.events,
        active=sub.active,
        fail_count=sub.fail_count,
        last_error=sub.last_error,
        disabled_reason=sub.disabled_reason,
        last_called_at=when(sub.last_called_at),
        created_at=when(sub.created_at) or datetime.now(UTC),
        secret=sub.secret if reveal else None,
    ).model_dump(mode="json")


def _options(values: dict[str, Any]) -> SplitOptions:
    try:
        return SplitOptions.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise invalid(f"{where}: {first.get('msg', 'is not valid')}") from None


def routes(bridge: BridgeFrontend, guard: Guard) -> list[BaseRoute]:
    hub = bridge.hub

    async def job_for(key: ApiKey, job_id: str) -> Job:
        job = await hub.get_job(job_id) if job_id.isascii() and job_id.isalnum() else None
        if job is None or job.origin.api_key_id != key.id:
            raise StemhubError(ErrorCode.NOT_FOUND, f"There is no job {job_id}.")
        return job

    def body_of(job: Job) -> dict[str, Any]:
        return v1_job(job, bridge.links(job), base_url=bridge.base_url).model_dump(mode="json")

    async def read_split(request: Request) -> tuple[SplitOptions, Received | None]:
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        query = dict(request.query_params)
        if ctype == "multipart/form-data":
            fields, received = await bridge.uploads.read_form(request)
            try:
                return _options({**query, **fields}), received
            except StemhubError:
                if received is not None:
                    discard(received.path)
                raise
        if ctype in ("application/json", "") and "url" not in query:
            parsed = await read_json(request, SplitOptions)
            merged = {**query, **parsed.model_dump(exclude_unset=True)}
            return _options(merged), None
        if ctype.startswith(_BINARY_TYPES):
            options = _options(query)
            received = await bridge.uploads.stream_body(request, filename=options.filename)
            return options, received
        if not ctype and "url" in query:
            return _options(query), None
        raise StemhubError(
            ErrorCode.UNSUPPORTED_FORMAT,
            "Send the audio as multipart/form-data, as the raw bytes (audio/*), "
            'or JSON {"url": ...}.',
        )

    async def split(request: Request, key: ApiKey) -> Response:
        options, received = await read_split(request)
        try:
            if received is not None:
                source = Source(
                    kind=SourceKind.FILE,
                    path=str(received.path),
                    filename=options.filename or received.filename,
                    content_type=received.content_type,
                    size_bytes=received.size_bytes,
                )
            elif options.url:
                source = source_for_url(bridge, options.url, options.filename)
            else:
                raise invalid("Send a file (multipart or raw body) or a url.")
            callback = check_callback(bridge, options.callback_url, "callback_url")
            context: dict[str, Any] = {"dialect": DIALECT_V1}
            if callback:
                context["callback_url"] = callback
            try:
                job_request = JobRequest(
                    source=source,
                    stems=options.stems,
                    output_format=options.output_format.strip().upper(),
                    quality=options.quality.strip().upper(),
                    origin=Origin(platform=PLATFORM, api_key_id=key.id, context=context),
                    metadata=options.metadata,
                    idempotency_key=idempotency_key(key, request.headers.get("idempotency-key")),
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                raise invalid(f"{where}: {first.get('msg', 'is not valid')}") from None
            job = await hub.submit(job_request)
        except BaseException:
            if received is not None:
                discard(received.path)
            raise
        wait = min(options.wait, bridge.settings.max_wait_s)
        if wait > 0 and not job.finished:
            try:
                job = await hub.wait_for(job.id, delivered=False, timeout=wait)
            except TimeoutError:
                job = await hub.require_job(job.id)
        body = body_of(job)
        if job.finished:
            return JSONResponse(body, status_code=200)
        return JSONResponse(body, status_code=202, headers={"Location": body["status_url"]})

    async def get_job(request: Request, key: ApiKey) -> Response:
        return JSONResponse(body_of(await job_for(key, request.path_params["job_id"])))

    async def list_jobs(request: Request, key: ApiKey) -> Response:
        limit = query_int(request, "limit", 20, 1, 100)
        offset = query_int(request, "offset", 0, 0, 10**9)
        wanted = request.query_params.get("status")
        statuses = None
        if wanted:
            try:
                statuses = [JobStatus(wanted.strip().upper())]
            except ValueError:
                names = ", ".join(s.value.lower() for s in JobStatus)
                raise invalid(f"status must be one of {names}.") from None
        jobs = await hub.store.list_jobs(
            statuses=statuses, api_key_id=key.id, limit=limit, offset=offset
        )
        total = await hub.store.count_jobs(statuses=statuses, api_key_id=key.id)
        return JSONResponse(
            {
                "jobs": [body_of(job) for job in jobs],
                "total": total,
                "limit": limit,
                "offset": offset,
                "has_more": offset + len(jobs) < total,
            }
        )

    async def get_stem(request: Request, key: ApiKey) -> Response:
        job = await job_for(key, request.path_params["job_id"])
        return stem_download(hub.outputs, job, request.path_params["stem"])

    async def get_zip(request: Request, key: ApiKey) -> Response:
        job = await job_for(key, request.path_params["job_id"])
        return await asyncio.to_thread(stems_zip, hub.outputs, job)

    async def create_hook(request: Request, key: ApiKey) -> Response:
        body = await read_json(request, HookCreate)
        unknown = sorted(set(body.events) - set(WEBHOOK_EVENTS))
        if unknown or not body.events:
            raise invalid(f"events must be a non-empty list of {', '.join(WEBHOOK_EVENTS)}.")
        check_callback(bridge, body.target_url, "target_url")
        sub = await bridge.outbox.subscribe(
            key.id,
            body.target_url,
            list(dict.fromkeys(body.events)),
            scheme=SigningScheme.STANDARD,
        )
        return JSONResponse(hook_body(sub, reveal=True), status_code=201)

    async def list_hooks(_request: Request, key: ApiKey) -> Response:
        subs = await bridge.outbox.subscriptions(key.id)
        hooks = [hook_body(s, reveal=False) for s in subs if s.scheme is SigningScheme.STANDARD]
        return JSONResponse({"hooks": hooks})

    async def get_hook(request: Request, key: ApiKey) -> Response:
        sub = await bridge.outbox.subscription(request.path_params["hook_id"], key.id)
        if sub is None or sub.scheme is not SigningScheme.STANDARD:
            raise StemhubError(ErrorCode.NOT_FOUND, "There is no such hook.")
        return JSONResponse(hook_body(sub, reveal=False))

    async def delete_hook(request: Request, key: ApiKey) -> Response:
        if not await bridge.outbox.unsubscribe(request.path_params["hook_id"], key.id):
            raise StemhubError(ErrorCode.NOT_FOUND, "There is no such hook.")
        return JSONResponse({"deleted": True})

    def v1(handler: Any) -> Any:
        return endpoint(guard, "v1", handler)

    return [
        make_route(PREFIX + "/split", v1(split), "POST"),
        make_route(PREFIX + "/jobs", v1(list_jobs), "GET"),
        make_route(PREFIX + "/jobs/{job_id}", v1(get_job), "GET"),
        make_route(PREFIX + "/jobs/{job_id}/stems.zip", v1(get_zip), "GET"),
        make_route(PREFIX + "/jobs/{job_id}/stems/{stem}", v1(get_stem), "GET"),
        make_route(PREFIX + "/hooks", v1(create_hook), "POST"),
        make_route(PREFIX + "/hooks", v1(list_hooks), "GET"),
        make_route(PREFIX + "/hooks/{hook_id}", v1(get_hook), "GET"),
        make_route(PREFIX + "/hooks/{hook_id}", v1(delete_hook), "DELETE"),
    ]


__all__ = ["PREFIX", "HookCreate", "SplitOptions", "V1Hook", "routes"]
