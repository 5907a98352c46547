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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from stemhub import (
    ErrorCode,
    JobRequest,
    JobStatus,
    Origin,
    SigningScheme,
    Source,
    SourceKind,
    StemhubError,
    Subscription,
)
from stemhub_n8n_bridge import handlers
from stemhub_n8n_bridge._http import Guard, check_metadata, endpoint, invalid, read_json
from stemhub_n8n_bridge.downloads import stem_download, stems_zip
from stemhub_n8n_bridge.frontend import DIALECT_V1, PLATFORM
from stemhub_n8n_bridge.keys import ApiKey
from stemhub_n8n_bridge.openapi import (
    BINARY,
    GUARDED,
    RATE_HEADERS,
    WITH_BODY,
    documented,
    json_body,
    json_response,
    link,
    operation,
    query_enum,
    query_int,
    with_links,
)
from stemhub_n8n_bridge.uploads import Received, discard
from stemhub_n8n_bridge.wire import HookCreate, SplitOptions, V1Hook, v1_job

if TYPE_CHECKING:
    from stemhub import Job
    from stemhub_n8n_bridge.frontend import BridgeFrontend

PREFIX = "/v1"
_BINARY_TYPES = ("audio/", "video/", "application/octet-stream")


def hook_body(sub: Subscription, *, reveal: bool) -> dict[str, Any]:
    when = handlers.when
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


TAGS = ["n8n / Zapier"]
V1_STATUSES = ["queued", "running", "completed", "failed", "expired", "cancelled"]
_DOWNLOAD_LINKS = {
    "DownloadStemsZip": link("downloadStemsZip", job_id="$response.body#/id"),
    "DownloadStem": link(
        "downloadStem", job_id="$response.body#/id", stem="$response.body#/stems_requested/0"
    ),
}
_JOB_LINKS = {"GetJob": link("getJobV1", job_id="$response.body#/id"), **_DOWNLOAD_LINKS}
_HOOK_LINKS = {
    "GetHook": link("getHook", hook_id="$response.body#/id"),
    "Unsubscribe": link("unsubscribeHook", hook_id="$response.body#/id"),
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


SPLIT = operation(
    "split",
    "Split a song: a file (multipart or raw bytes) or JSON {url}",
    {
        200: with_links(json_response("V1Job", "The job ended within `wait`."), **_JOB_LINKS),
        202: with_links(
            json_response("V1Job", "Accepted; poll Location or wait for the webhook.")
            | {
                "headers": RATE_HEADERS
                | {"Location": {"schema": {"type": "string"}, "required": True}}
            },
            **_JOB_LINKS,
        ),
    },
    errors=(*GUARDED, *WITH_BODY, 409, 415, 422),
    tags=TAGS,
    description=(
        "With `wait` (seconds), answers 200 with the finished job if it ends in time, else "
        "202 with the job and a Location to poll. `callback_url` gets a signed "
        "job.completed / job.failed webhook (Standard Webhooks). A completed job's "
        "`result_page_url` opens its result page."
    ),
    parameters=[
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "schema": {"type": "number", "minimum": 0},
        },
        {"name": "filename", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
        },
    ],
    body={
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SplitOptions"}},
            "multipart/form-data": {"schema": _split_form()},
            "audio/mpeg": BINARY,
            "audio/wav": BINARY,
            "application/octet-stream": BINARY,
        },
    },
)
LIST_JOBS = operation(
    "listJobsV1",
    "This key's jobs, newest first (a polling trigger's list)",
    {200: json_response("V1JobList", "One page.")},
    errors=(*GUARDED, 400),
    tags=TAGS,
    parameters=[
        query_int("limit", 20, 1, handlers.MAX_PAGE),
        query_int("offset", 0, 0, 10**9),
        query_enum("status", V1_STATUSES),
    ],
)
GET_JOB = operation(
    "getJobV1",
    "A job (with `result_page_url` once it completed)",
    {200: with_links(json_response("V1Job", "The job."), **_DOWNLOAD_LINKS)},
    errors=(*GUARDED, 404),
    tags=TAGS,
)
_DOWNLOAD_ERRORS = (*GUARDED, 404, 409, 410)
DOWNLOAD_STEM = operation(
    "downloadStem",
    "One stem as a file (Content-Disposition names it)",
    {
        200: {
            "description": "The audio.",
            "headers": RATE_HEADERS,
            "content": {"audio/wav": BINARY, "audio/mpeg": BINARY, "audio/flac": BINARY},
        },
        307: {"description": "The stem is kept elsewhere; follow Location."},
    },
    errors=_DOWNLOAD_ERRORS,
    tags=TAGS,
)
DOWNLOAD_ZIP = operation(
    "downloadStemsZip",
    "Every stem in one ZIP, streamed",
    {
        200: {
            "description": "The ZIP.",
            "headers": RATE_HEADERS,
            "content": {"application/zip": BINARY},
        }
    },
    errors=_DOWNLOAD_ERRORS,
    tags=TAGS,
)
SUBSCRIBE = operation(
    "subscribeHook",
    "REST hooks: subscribe a target URL",
    {201: with_links(json_response("V1Hook", "The hook, with its signing secret."), **_HOOK_LINKS)},
    errors=(*GUARDED, *WITH_BODY, 422),
    tags=TAGS,
    body=json_body("HookCreate"),
)
LIST_HOOKS = operation(
    "listHooks",
    "This key's hooks (disabled ones say why)",
    {200: json_response("V1HookList", "The hooks.")},
    errors=GUARDED,
    tags=TAGS,
)
GET_HOOK = operation(
    "getHook",
    "One hook",
    {200: json_response("V1Hook", "The hook.")},
    errors=(*GUARDED, 404),
    tags=TAGS,
)
UNSUBSCRIBE = operation(
    "unsubscribeHook",
    "REST hooks: unsubscribe",
    {200: json_response("Deleted", "Removed.")},
    errors=(*GUARDED, 404),
    tags=TAGS,
)


def _missing(job_id: str) -> StemhubError:
    return StemhubError(ErrorCode.NOT_FOUND, f"There is no job {job_id}.")


def _statuses(word: str) -> list[JobStatus]:
    return [JobStatus(word)]


def routes(bridge: BridgeFrontend, guard: Guard) -> list[BaseRoute]:
    hub = bridge.hub

    def body_of(job: Job) -> dict[str, Any]:
        links = bridge.links(job)
        page = handlers.page_url(bridge, job, links)
        return v1_job(job, links, base_url=bridge.base_url, page_url=page).model_dump(mode="json")

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
        idem = handlers.idempotency_key(key, request.headers.get("idempotency-key"))
        options, received = await read_split(request)
        try:
            check_metadata(options.metadata)
            upload = (received.filename, received.size_bytes) if received is not None else None
            print_ = handlers.fingerprint(options.model_dump(mode="json"), upload)
            existing = await handlers.replay(bridge, idem, print_)
            if existing is not None:
                if received is not None:
                    discard(received.path)
                return await answer(existing, options)
            if received is not None:
                source = Source(
                    kind=SourceKind.FILE,
                    path=str(received.path),
                    filename=options.filename or received.filename,
                    content_type=received.content_type,
                    size_bytes=received.size_bytes,
                )
            elif options.url:
                source = handlers.source_for_url(bridge, options.url, options.filename)
            else:
                raise invalid("Send a file (multipart or raw body) or a url.")
            callback = handlers.check_callback(bridge, options.callback_url, "callback_url")
            context: dict[str, Any] = {"dialect": DIALECT_V1, handlers.FINGERPRINT: print_}
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
                    idempotency_key=idem,
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
        return await answer(job, options)

    async def answer(job: Job, options: SplitOptions) -> Response:
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

    async def render(job: Job) -> tuple[bytes, bool]:
        return bytes(JSONResponse(body_of(job)).body), True

    async def get_job(request: Request, key: ApiKey) -> Response:
        return await handlers.read_job(bridge, "v1", request, key, render, _missing)

    async def list_jobs(request: Request, key: ApiKey) -> Response:
        names = ", ".join(s.value.lower() for s in JobStatus)
        statuses = handlers.status_filter(request, _statuses, f"one of {names}")
        page = await handlers.page_of_jobs(bridge, request, key, statuses)
        return JSONResponse(
            {
                "jobs": [body_of(job) for job in page.jobs],
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "has_more": page.has_more,
            }
        )

    async def get_stem(request: Request, key: ApiKey) -> Response:
        job = await handlers.owned_job(bridge, key, request.path_params["job_id"], _missing)
        return stem_download(hub, job, request.path_params["stem"])

    async def get_zip(request: Request, key: ApiKey) -> Response:
        job = await handlers.owned_job(bridge, key, request.path_params["job_id"], _missing)
        return await asyncio.to_thread(stems_zip, hub, job)

    async def create_hook(request: Request, key: ApiKey) -> Response:
        body = await read_json(request, HookCreate)
        events = handlers.check_events(body.events)
        handlers.check_callback(bridge, body.target_url, "target_url")
        sub = await bridge.outbox.subscribe(
            key.id, body.target_url, events, scheme=SigningScheme.STANDARD
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
        return await handlers.unsubscribe(bridge, key, request.path_params["hook_id"], "hook")

    def v1(handler: Any) -> Any:
        return endpoint(guard, "v1", handler)

    return [
        documented(PREFIX + "/split", v1(split), "POST", SPLIT),
        documented(PREFIX + "/jobs", v1(list_jobs), "GET", LIST_JOBS),
        documented(PREFIX + "/jobs/{job_id}", v1(get_job), "GET", GET_JOB),
        documented(PREFIX + "/jobs/{job_id}/stems.zip", v1(get_zip), "GET", DOWNLOAD_ZIP),
        documented(PREFIX + "/jobs/{job_id}/stems/{stem}", v1(get_stem), "GET", DOWNLOAD_STEM),
        documented(PREFIX + "/hooks", v1(create_hook), "POST", SUBSCRIBE),
        documented(PREFIX + "/hooks", v1(list_hooks), "GET", LIST_HOOKS),
        documented(PREFIX + "/hooks/{hook_id}", v1(get_hook), "GET", GET_HOOK),
        documented(PREFIX + "/hooks/{hook_id}", v1(delete_hook), "DELETE", UNSUBSCRIBE),
    ]


__all__ = ["PREFIX", "routes"]
