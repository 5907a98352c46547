"""A local fake of the hosted StemSplit API, for tests and benchmarks.

It speaks the wire format of :mod:`stemhub.stemsplit_wire` on loopback: the same
endpoints, JSON shapes, error envelopes and headers as ``https://stemsplit.io/api/v1``,
presigned upload and download URLs that point at itself (HMAC-signed, expiring), jobs
that move PENDING -> PROCESSING -> COMPLETED with progress over a configurable
processing time, idempotency keys honoured on creates, a per-key rate limit (fixed
windows, ``X-RateLimit-*`` headers, 429 with ``Retry-After``), and webhook deliveries
signed ``X-Webhook-Signature: sha256=<hmac of the raw body>`` like the real service.

The fake does not separate anything. Its stems are simple filtered versions of the
input (``stems_mode="filtered"``: band-pass "vocals", low-pass "bass", high-pass
"drums", the residual as "other"/"instrumental"; encoded in the requested format) or,
with ``stems_mode="copy"``, the uploaded bytes unchanged. Jobs from a ``sourceUrl`` or a
YouTube link use a synthesized ten-second tone (nothing here reaches the internet).
BPM and key are fixed (120.0, "A minor").

Time runs on a :class:`~stemhub.backends.stemsplit.pacing.Clock`: with
``time_factor=0.01`` a 40 s job and the 60 s rate-limit window both pass 100 times
faster; give the backend the same ``fake.clock`` so its waits shrink alike.

Failure injection (``fake.state``): :meth:`FakeStemSplitState.fail` (any status with an
API error code, ``after=True`` to answer with it after the work was done, as when a
response is lost), ``stall_s`` (an answer that comes late or never), ``malformed``
(a 200 whose body is not JSON), :meth:`~FakeStemSplitState.rate_limit_storm`, job
outcomes FAILED/EXPIRED (``outcomes``), webhook drops and duplicates. Every request is
counted per route (``counters``) and logged with the API time it arrived at
(``request_log``), which is what the rate limit counts.

Usage::

    async with run_fake_stemsplit(processing_s=2) as fake:
        backend = StemSplitBackend(make_settings(tmp), fake.settings(), clock=fake.clock)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import secrets
import signal
import tempfile
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from stemhub.backends.stemsplit.pacing import Clock, ScaledClock
from stemhub.backends.stemsplit.settings import StemSplitSettings
from stemhub.http import serve_asgi
from stemhub.models import STEMS_BY_SET, StemSet
from stemhub.stemsplit_wire import (
    EVENT_COMPLETED,
    EVENT_FAILED,
    IDEMPOTENCY_HEADER,
    LINK_TTL_S,
    MAX_DURATION_S,
    MAX_UPLOAD_BYTES,
    SIGNATURE_HEADER,
    WEBHOOK_EVENTS,
    ApiErrorCode,
    CreateJobRequest,
    CreateYouTubeJobRequest,
    RemoteStatus,
    UploadRequest,
    WebhookCreateRequest,
    error_envelope,
    sign_payload,
    wire_stem_key,
)

API_PREFIX = "/api/v1"
STORAGE_PREFIX = "/storage"
INSPECT_PATH = "/_fake/state"
DEFAULT_API_KEY = "sk_test_stemhub_fake"
FIXED_BPM = 120.0
FIXED_KEY = "A minor"
_SYNTH_SECONDS = 10.0
_SAMPLE_RATE = 44100
_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}


@dataclass
class Fault:
    """One injected misbehaviour, consumed ``times`` times by matching requests.

    ``route`` is a route name (see :data:`ROUTES`) or ``"*"``. ``status`` (with an API
    error ``code``) answers instead of the real handler, or, with ``after=True``, after
    it ran (the work is done but the client never learns). ``stall_s`` delays the answer
    (longer than the client's timeout: a timeout). ``malformed`` answers 200 with a body
    that is not JSON.
    """

    route: str = "*"
    status: int | None = 500
    code: str | None = None
    message: str | None = None
    times: int = 1
    retry_after: float | None = None
    stall_s: float = 0.0
    malformed: bool = False
    after: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


ROUTES = (
    "upload",
    "storage_put",
    "storage_get",
    "create_job",
    "get_job",
    "list_jobs",
    "create_youtube_job",
    "get_youtube_job",
    "balance",
    "create_webhook",
    "list_webhooks",
    "delete_webhook",
)


@dataclass
class FakeUpload:
    key: str
    filename: str
    content_type: str
    path: Path | None = None
    size: int = 0
    content_length: int | None = None


@dataclass
class FakeJob:
    id: str
    kind: str
    created: float
    created_at: datetime
    process_s: float
    outcome: RemoteStatus
    output_type: str
    quality: str
    output_format: str
    file_name: str
    duration_s: float
    size: int
    input_path: Path
    credits: int
    metadata: dict[str, Any] | None = None
    youtube_url: str | None = None
    error_message: str | None = None

    def state_at(self, now: float) -> tuple[RemoteStatus, float]:
        elapsed = now - self.created
        queued = self.process_s * 0.1
        if elapsed < queued:
            return RemoteStatus.PENDING, 0.0
        if elapsed < self.process_s:
            done = (elapsed - queued) / max(self.process_s - queued, 1e-9)
            return RemoteStatus.PROCESSING, float(min(99, int(100 * done)))
        if self.outcome is RemoteStatus.COMPLETED:
            return RemoteStatus.COMPLETED, 100.0
        return self.outcome, 50.0

    @property
    def stems(self) -> tuple[str, ...]:
        stems = STEMS_BY_SET[StemSet(self.output_type)]
        return (*stems, "full_audio") if self.kind == "youtube" else stems


@dataclass
class FakeWebhook:
    id: str
    url: str
    secret: str
    events: list[str]
    created_at: datetime
    is_active: bool = True
    fail_count: int = 0
    last_error: str | None = None
    last_called_at: datetime | None = None


@dataclass
class Delivery:
    webhook_id: str
    job_id: str
    event: str
    status: int | None
    error: str | None
    at: float


@dataclass
class FakeStemSplitState:
    """Everything the fake knows, and every knob a test may turn."""

    clock: Clock
    data_dir: Path
    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    revoked_keys: set[str] = field(default_factory=set)
    balance_seconds: float = 10 * 3600.0
    processing_s: float = 4.0
    rate_limit: int = 60
    rate_window_s: float = 60.0
    link_ttl_s: float = LINK_TTL_S
    upload_ttl_s: float = 900.0
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_duration_s: float = MAX_DURATION_S
    min_duration_s: float = 0.5
    stems_mode: str = "filtered"
    webhook_includes_analysis: bool = True
    drop_webhooks: bool = False
    duplicate_webhooks: bool = False
    webhook_attempts: int = 3
    webhook_timeout_s: float = 10.0
    outcomes: deque[RemoteStatus] = field(default_factory=deque)
    faults: list[Fault] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    request_log: list[tuple[float, str, int]] = field(default_factory=list)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    uploads: dict[str, FakeUpload] = field(default_factory=dict)
    webhooks: dict[str, FakeWebhook] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    idempotency: dict[str, str] = field(default_factory=dict)
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    delivery_made: asyncio.Event = field(default_factory=asyncio.Event)
    window: tuple[int, int] = field(default=(0, 0), init=False)
    """(index, requests) of the current rate-limit window."""
    started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock.monotonic()

    def fail(self, route: str = "*", status: int | None = 500, **options: Any) -> Fault:
        """Inject a fault (see :class:`Fault`); returns it so a test can inspect it."""
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known: {ROUTES}")
        fault = Fault(route=route, status=status, **options)
        self.faults.append(fault)
        return fault

    def rate_limit_storm(self, times: int, retry_after: float = 1.0, route: str = "*") -> Fault:
        """The next ``times`` API requests get 429 with ``Retry-After``."""
        return self.fail(
            route,
            429,
            code=ApiErrorCode.RATE_LIMIT_EXCEEDED,
            times=times,
            retry_after=retry_after,
        )

    def record_delivery(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.delivery_made.set()

    async def wait_for_deliveries(self, count: int, timeout_s: float = 5.0) -> list[Delivery]:
        """Wait (real seconds) until ``count`` delivery attempts were recorded.

        A delivery is recorded after the receiver answered, which may be after the
        receiver already woke the job it was for.
        """
        async with asyncio.timeout(timeout_s):
            while len(self.deliveries) < count:
                self.delivery_made.clear()
                await self.delivery_made.wait()
        return list(self.deliveries)

    def api_requests(self) -> list[tuple[float, str, int]]:
        """The logged requests to the API proper (storage traffic excluded)."""
        return [r for r in self.request_log if not r[1].startswith("storage_")]

    def max_in_window(self, window_s: float | None = None) -> int:
        """The most API requests answered in any sliding window (default: the limit's)."""
        window = window_s or self.rate_window_s
        times = sorted(t for t, _, _ in self.api_requests())
        best = 0
        start = 0
        for end, t in enumerate(times):
            while times[start] <= t - window:
                start += 1
            best = max(best, end - start + 1)
        return best


class _FakeApi:
    """The request handlers, over one :class:`FakeStemSplitState`."""

    def __init__(self, state: FakeStemSplitState) -> None:
        self.state = state
        self.tasks: set[asyncio.Task[None]] = set()
        # made now: building a client (its TLS context) would stall the first delivery
        self._http = httpx.AsyncClient(timeout=state.webhook_timeout_s)
        self._closing = asyncio.Event()

    async def stall(self, seconds: float) -> None:
        """Hold an answer back; cut short when the fake shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.state.clock.to_real(seconds))

    # plumbing

    def _sign(self, message: str) -> str:
        digest = hmac.new(self.state.signing_key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _presign(self, request: Request, path: str, ttl_s: float) -> tuple[str, datetime]:
        expires = int(self.state.clock.time() + ttl_s)
        origin = str(request.base_url).rstrip("/")
        signature = self._sign(f"{path}:{expires}")
        when = datetime.fromtimestamp(expires, UTC)
        return f"{origin}{STORAGE_PREFIX}/{path}?expires={expires}&signature={signature}", when

    def _check_presigned(self, request: Request, path: str) -> Response | None:
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        if not expires.isdigit() or not hmac.compare_digest(
            self._sign(f"{path}:{expires}"), signature
        ):
            return PlainTextResponse("SignatureDoesNotMatch", 403)
        if int(expires) < self.state.clock.time():
            return PlainTextResponse("Request has expired", 403)
        return None

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """Count one request in the current window; its headers and whether it is over."""
        state = self.state
        now = state.clock.monotonic()
        index = int((now - state.started) // state.rate_window_s)
        window, used = state.window
        if window != index:
            used = 0
        used += 1
        state.window = (index, used)
        window_end = state.started + (index + 1) * state.rate_window_s
        reset_in = window_end - now
        headers = {
            "X-RateLimit-Limit": str(state.rate_limit),
            "X-RateLimit-Remaining": str(max(0, state.rate_limit - used)),
            "X-RateLimit-Reset": str(math.ceil(state.clock.time() + reset_in)),
        }
        if used > state.rate_limit:
            headers["Retry-After"] = str(max(1, math.ceil(reset_in)))
            return headers, True
        return headers, False

    def _take_fault(self, route: str) -> Fault | None:
        for fault in self.state.faults:
            if fault.times > 0 and fault.route in ("*", route):
                fault.times -= 1
                if fault.times == 0:
                    self.state.faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: Fault, headers: dict[str, str]) -> Response:
        if fault.malformed:
            return Response(b'{"id": "job_', 200, headers=headers, media_type="application/json")
        status = fault.status or 500
        out = dict(headers)
        if status == 429:
            retry_after = fault.retry_after if fault.retry_after is not None else 1.0
            out["Retry-After"] = f"{retry_after:g}"
            out["X-RateLimit-Remaining"] = "0"
            out["X-RateLimit-Reset"] = str(math.ceil(self.state.clock.time() + retry_after))
        code = fault.code or ("INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST")
        message = fault.message or f"Injected {status}."
        body = error_envelope(str(code), message, **fault.extra)
        return JSONResponse(body, status, headers=out)

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return JSONResponse(
                error_envelope(ApiErrorCode.MISSING_API_KEY, "Missing API key."), 401
            )
        key = header[7:].strip()
        if key in self.state.revoked_keys:
            return JSONResponse(
                error_envelope(ApiErrorCode.API_KEY_REVOKED, "This API key was revoked."), 403
            )
        if key not in self.state.api_keys:
            return JSONResponse(
                error_envelope(ApiErrorCode.INVALID_API_KEY, "Invalid API key."), 401
            )
        return None

    def api(
        self, route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler with counting, auth, the rate limit and fault injection."""

        async def endpoint(request: Request) -> Response:
            state = self.state
            state.counters[route] += 1
            arrived = state.clock.monotonic()
            response = await self._answer(route, handler, request)
            state.request_log.append((arrived, route, response.status_code))
            return response

        return endpoint

    async def _answer(
        self, route: str, handler: Callable[[Request], Awaitable[Response]], request: Request
    ) -> Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        headers, over = self._rate_headers()
        if over:
            body = error_envelope(ApiErrorCode.RATE_LIMIT_EXCEEDED, "Rate limit exceeded.")
            return JSONResponse(body, 429, headers=headers)
        fault = self._take_fault(route)
        if fault is not None and fault.stall_s > 0:
            await self.stall(fault.stall_s)
        if fault is not None and not fault.after and (fault.status or fault.malformed):
            return self._fault_response(fault, headers)
        response = await handler(request)
        if fault is not None and fault.after:
            return self._fault_response(fault, headers)
        response.headers.update(headers)
        return response

    def storage(
        self, route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Storage routes: counted and faultable, but outside the API's key and limit."""

        async def endpoint(request: Request) -> Response:
            state = self.state
            state.counters[route] += 1
            arrived = state.clock.monotonic()
            fault = self._take_fault(route)
            if fault is not None and fault.stall_s > 0:
                await self.stall(fault.stall_s)
            if fault is not None and (fault.status or fault.malformed):
                response: Response = PlainTextResponse(
                    fault.message or "InternalError", fault.status or 500
                )
            else:
                response = await handler(request)
            state.request_log.append((arrived, route, response.status_code))
            return response

        return endpoint

    @staticmethod
    async def _json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    @staticmethod
    def _invalid(message: str, code: str = ApiErrorCode.INVALID_REQUEST) -> JSONResponse:
        return JSONResponse(error_envelope(code, message), 400)

    def _now_iso(self) -> datetime:
        return datetime.fromtimestamp(self.state.clock.time(), UTC)

    # uploads

    async def create_upload(self, request: Request) -> Response:
        try:
            body = UploadRequest.model_validate(await self._json(request))
        except ValidationError:
            return self._invalid("Send {filename, contentType}.")
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in body.filename)[-80:]
        key = f"uploads/api_{uuid.uuid4().hex[:12]}/{safe or 'input'}"
        content_type = body.content_type or "application/octet-stream"
        self.state.uploads[key] = FakeUpload(key, body.filename, content_type)
        url, expires = self._presign(request, key, self.state.upload_ttl_s)
        return JSONResponse(
            {
                "uploadUrl": url,
                "uploadKey": key,
                "expiresAt": expires.isoformat(),
                "maxFileSizeBytes": self.state.max_upload_bytes,
                "maxFileSizeMb": self.state.max_upload_bytes // (1024 * 1024),
                "contentType": content_type,
            }
        )

    async def put_upload(self, request: Request) -> Response:
        key = request.path_params["key"]
        refused = self._check_presigned(request, key)
        if refused is not None:
            return refused
        upload = self.state.uploads.get(key)
        if upload is None:
            return PlainTextResponse("NoSuchUpload", 404)
        if "authorization" in request.headers:
            return PlainTextResponse("InvalidArgument: only one auth mechanism allowed", 400)
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return PlainTextResponse("MissingContentLength", 411)
        if int(length) > self.state.max_upload_bytes:
            return PlainTextResponse("EntityTooLarge", 413)
        target = self.state.data_dir / "uploads" / uuid.uuid4().hex
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with target.open("wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.state.max_upload_bytes:
                    break
                await asyncio.to_thread(handle.write, chunk)
        if size != int(length):
            target.unlink(missing_ok=True)
            return PlainTextResponse("IncompleteBody", 400)
        upload.path, upload.size, upload.content_length = target, size, int(length)
        return Response(status_code=200, headers={"ETag": f'"{uuid.uuid4().hex}"'})

    # jobs

    def _synth_input(self) -> Path:
        target = self.state.data_dir / "synth.wav"
        if not target.exists():
            import soundfile

            t = np.arange(int(_SYNTH_SECONDS * _SAMPLE_RATE)) / _SAMPLE_RATE
            tone = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 880 * t)
            soundfile.write(target, np.stack([tone, tone], axis=1).astype(np.float32), 44100)
        return target

    @staticmethod
    def _probe(path: Path) -> float | None:
        import soundfile

        try:
            return float(soundfile.info(str(path)).duration)
        except (RuntimeError, soundfile.LibsndfileError):
            return None

    def _replayed(self, request: Request, scope: str) -> str | None:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        return self.state.idempotency.get(f"{scope}:{key}") if key else None

    def _remember_key(self, request: Request, scope: str, value: str) -> None:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key:
            self.state.idempotency[f"{scope}:{key}"] = value

    async def create_job(self, request: Request) -> Response:
        existing = self._replayed(request, "jobs")
        if existing is not None:
            self.state.counters["idempotent_replay"] += 1
            return JSONResponse(self.snapshot(request, self.state.jobs[existing]), 201)
        try:
            body = CreateJobRequest.model_validate(await self._json(request))
        except ValidationError:
            return self._invalid("The body is not a job request.")
        if (body.upload_key is None) == (body.source_url is None):
            return self._invalid("Give exactly one of uploadKey and sourceUrl.")
        if body.upload_key is not None:
            upload = self.state.uploads.get(body.upload_key)
            if upload is None or upload.path is None:
                return self._invalid("Unknown uploadKey, or nothing was uploaded to it.")
            path, size, name = upload.path, upload.size, body.file_name or upload.filename
        else:
            path = self._synth_input()
            size = path.stat().st_size
            name = body.file_name or (body.source_url or "").rsplit("/", 1)[-1] or "audio"
        return await self._create(request, "stem", path, size, name, body, None)

    async def create_youtube_job(self, request: Request) -> Response:
        existing = self._replayed(request, "youtube")
        if existing is not None:
            self.state.counters["idempotent_replay"] += 1
            return JSONResponse(self.snapshot(request, self.state.jobs[existing]), 201)
        try:
            body = CreateYouTubeJobRequest.model_validate(await self._json(request))
        except ValidationError:
            return self._invalid("Send {youtubeUrl}.")
        path = self._synth_input()
        return await self._create(
            request, "youtube", path, path.stat().st_size, "youtube.wav", body, body.youtube_url
        )

    async def _create(
        self,
        request: Request,
        kind: str,
        path: Path,
        size: int,
        name: str,
        body: CreateJobRequest | CreateYouTubeJobRequest,
        youtube_url: str | None,
    ) -> Response:
        state = self.state
        output_type = (body.output_type or "BOTH").upper()
        if output_type not in StemSet.__members__:
            return self._invalid(f"Unknown outputType {output_type}.")
        output_format = (body.output_format or "MP3").upper()
        if output_format not in ("WAV", "MP3", "FLAC"):
            return self._invalid(f"Unknown outputFormat {output_format}.")
        if size > state.max_upload_bytes:
            return self._invalid("The file is larger than 50 MB.", ApiErrorCode.FILE_TOO_LARGE)
        duration = await asyncio.to_thread(self._probe, path)
        if duration is None:
            return self._invalid(
                "This audio format is not supported.", ApiErrorCode.UNSUPPORTED_FORMAT
            )
        if duration > state.max_duration_s:
            return self._invalid(
                "The audio is longer than 60 minutes.", ApiErrorCode.AUDIO_TOO_LONG
            )
        if duration < state.min_duration_s:
            return self._invalid("The audio is too short.", ApiErrorCode.AUDIO_TOO_SHORT)
        credits = max(1, math.ceil(duration))
        if state.balance_seconds < credits:
            return JSONResponse(
                error_envelope(
                    ApiErrorCode.INSUFFICIENT_CREDITS,
                    "Not enough credits for this job.",
                    required_seconds=credits,
                    purchase_url="https://stemsplit.io/pricing",
                ),
                402,
            )
        state.balance_seconds -= credits
        outcome = RemoteStatus(state.outcomes.popleft() if state.outcomes else "COMPLETED")
        job = FakeJob(
            id=("yt_" if kind == "youtube" else "cl") + uuid.uuid4().hex[:22],
            kind=kind,
            created=state.clock.monotonic(),
            created_at=self._now_iso(),
            process_s=state.processing_s,
            outcome=outcome,
            output_type=output_type,
            quality=(body.quality or "BALANCED").upper(),
            output_format=output_format,
            file_name=name,
            duration_s=duration,
            size=size,
            input_path=path,
            credits=credits,
            metadata=body.metadata,
            youtube_url=youtube_url,
            error_message="The audio could not be separated."
            if outcome is RemoteStatus.FAILED
            else None,
        )
        state.jobs[job.id] = job
        self._remember_key(request, "jobs" if kind == "stem" else "youtube", job.id)
        origin = str(request.base_url).rstrip("/")
        task = asyncio.get_running_loop().create_task(self._deliver_when_done(job, origin))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return JSONResponse(self.snapshot(request, job), 201)

    def _outputs(self, origin: str, job: FakeJob) -> dict[str, Any]:
        ext = job.output_format.lower()
        out: dict[str, Any] = {}
        for stem in job.stems:
            path = f"outputs/{job.id}/{stem}.{ext}"
            expires = int(self.state.clock.time() + self.state.link_ttl_s)
            signature = self._sign(f"{path}:{expires}")
            out[wire_stem_key(stem)] = {
                "url": f"{origin}{STORAGE_PREFIX}/{path}?expires={expires}&signature={signature}",
                "expiresAt": datetime.fromtimestamp(expires, UTC).isoformat(),
            }
        return out

    def snapshot(self, request: Request | None, job: FakeJob, origin: str | None = None) -> Any:
        """The job as ``GET /jobs/{id}`` shows it now (fresh links each time)."""
        status, progress = job.state_at(self.state.clock.monotonic())
        body: dict[str, Any] = {
            "id": job.id,
            "status": status.value,
            "progress": progress,
            "createdAt": job.created_at.isoformat(),
            "input": {
                "fileName": job.file_name,
                "durationSeconds": math.ceil(job.duration_s),
                "fileSizeBytes": job.size,
            },
            "options": {
                "outputType": job.output_type,
                "quality": job.quality,
                "outputFormat": job.output_format,
            },
            "creditsRequired": job.credits,
            "estimatedSeconds": max(1, math.ceil(job.process_s)),
        }
        if job.metadata is not None:
            body["metadata"] = job.metadata
        if job.kind == "youtube":
            body.update(youtubeUrl=job.youtube_url, videoTitle="Fake video", videoDuration=10)
        if status.finished:
            body["completedAt"] = self._now_iso().isoformat()
        if status is RemoteStatus.COMPLETED:
            base = origin or (str(request.base_url).rstrip("/") if request else "")
            body["outputs"] = self._outputs(base, job)
            body["audioMetadata"] = {"bpm": FIXED_BPM, "key": FIXED_KEY}
            body["creditsCharged"] = job.credits
        elif status is RemoteStatus.FAILED:
            body["errorMessage"] = job.error_message or "Separation failed."
        return body

    def _job_or_404(self, request: Request, kind: str) -> FakeJob | Response:
        job = self.state.jobs.get(request.path_params["job_id"])
        if job is None or job.kind != kind:
            return JSONResponse(error_envelope(ApiErrorCode.JOB_NOT_FOUND, "Job not found."), 404)
        return job

    async def get_job(self, request: Request) -> Response:
        job = self._job_or_404(request, "stem")
        if isinstance(job, Response):
            return job
        return JSONResponse(self.snapshot(request, job))

    async def get_youtube_job(self, request: Request) -> Response:
        job = self._job_or_404(request, "youtube")
        if isinstance(job, Response):
            return job
        return JSONResponse(self.snapshot(request, job))

    async def list_jobs(self, request: Request) -> Response:
        params = request.query_params
        try:
            limit = min(100, max(1, int(params.get("limit", "20"))))
            offset = max(0, int(params.get("offset", "0")))
        except ValueError:
            return self._invalid("limit and offset are integers.")
        wanted = params.get("status")
        now = self.state.clock.monotonic()
        jobs = sorted(
            (j for j in self.state.jobs.values() if j.kind == "stem"),
            key=lambda j: j.created,
            reverse=True,
        )
        if wanted:
            jobs = [j for j in jobs if j.state_at(now)[0].value == wanted.upper()]
        page = jobs[offset : offset + limit]
        return JSONResponse(
            {
                "jobs": [self.snapshot(request, j) for j in page],
                "pagination": {
                    "total": len(jobs),
                    "limit": limit,
                    "offset": offset,
                    "hasMore": offset + len(page) < len(jobs),
                },
            }
        )

    async def balance(self, request: Request) -> Response:
        seconds = max(0, int(self.state.balance_seconds))
        return JSONResponse(
            {
                "balanceSeconds": seconds,
                "balanceMinutes": seconds // 60,
                "balanceFormatted": f"{seconds // 60} minutes",
                "updatedAt": self._now_iso().isoformat(),
            }
        )

    # outputs

    async def get_output(self, request: Request) -> Response:
        job_id, filename = request.path_params["job_id"], request.path_params["filename"]
        refused = self._check_presigned(request, f"outputs/{job_id}/{filename}")
        if refused is not None:
            return refused
        job = self.state.jobs.get(job_id)
        stem, _, ext = filename.rpartition(".")
        if job is None or stem not in job.stems or ext != job.output_format.lower():
            return PlainTextResponse("NoSuchKey", 404)
        path = await asyncio.to_thread(self._render_stem, job, stem)
        return FileResponse(path, media_type=_MEDIA_TYPES[ext])

    def _render_stem(self, job: FakeJob, stem: str) -> Path:
        ext = job.output_format.lower()
        target = self.state.data_dir / "outputs" / job.id / f"{stem}.{ext}"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.state.stems_mode == "copy" or stem == "full_audio":
            target.write_bytes(job.input_path.read_bytes())
            return target
        import soundfile

        audio, rate = soundfile.read(str(job.input_path), dtype="float32", always_2d=True)
        stems = _filtered_stems(audio, rate)
        partial = target.with_name(target.name + ".part")
        soundfile.write(str(partial), stems[stem], rate, format=ext.upper())
        partial.replace(target)
        return target

    # webhooks

    async def create_webhook(self, request: Request) -> Response:
        existing = self._replayed(request, "webhooks")
        if existing is not None and existing in self.state.webhooks:
            return JSONResponse(self._webhook_body(self.state.webhooks[existing], True), 201)
        try:
            body = WebhookCreateRequest.model_validate(await self._json(request))
        except ValidationError:
            return self._invalid("Send {url, events}.")
        if not body.url.startswith(("http://", "https://")):
            return self._invalid("The webhook url must be http(s).")
        unknown = sorted(set(body.events) - set(WEBHOOK_EVENTS))
        if unknown:
            return self._invalid(f"Unknown events {unknown}.")
        hook = FakeWebhook(
            id="wh_" + uuid.uuid4().hex[:16],
            url=body.url,
            secret="whsec_" + secrets.token_urlsafe(24),
            events=list(body.events),
            created_at=self._now_iso(),
        )
        self.state.webhooks[hook.id] = hook
        self._remember_key(request, "webhooks", hook.id)
        return JSONResponse(self._webhook_body(hook, True), 201)

    @staticmethod
    def _webhook_body(hook: FakeWebhook, with_secret: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": hook.id,
            "url": hook.url,
            "events": hook.events,
            "isActive": hook.is_active,
            "failCount": hook.fail_count,
            "lastError": hook.last_error,
            "lastCalledAt": hook.last_called_at.isoformat() if hook.last_called_at else None,
            "createdAt": hook.created_at.isoformat(),
        }
        if with_secret:
            body["secret"] = hook.secret
        return body

    async def list_webhooks(self, request: Request) -> Response:
        hooks = [self._webhook_body(h, False) for h in self.state.webhooks.values()]
        return JSONResponse({"webhooks": hooks})

    async def delete_webhook(self, request: Request) -> Response:
        hook = self.state.webhooks.pop(request.path_params["webhook_id"], None)
        if hook is None:
            return JSONResponse(error_envelope(ApiErrorCode.NOT_FOUND, "Webhook not found."), 404)
        return JSONResponse({"deleted": True})

    async def _deliver_when_done(self, job: FakeJob, origin: str) -> None:
        state = self.state
        await state.clock.sleep(job.created + job.process_s - state.clock.monotonic())
        status, _ = job.state_at(state.clock.monotonic())
        event = EVENT_COMPLETED if status is RemoteStatus.COMPLETED else EVENT_FAILED
        snapshot = self.snapshot(None, job, origin=origin)
        data: dict[str, Any] = {
            "jobId": job.id,
            "status": snapshot["status"],
            "type": job.kind,
            "input": snapshot["input"],
            "options": snapshot["options"],
            "outputs": snapshot.get("outputs"),
            "creditsCharged": snapshot.get("creditsCharged"),
            "errorMessage": snapshot.get("errorMessage"),
            "createdAt": snapshot["createdAt"],
            "completedAt": snapshot.get("completedAt"),
            "metadata": job.metadata,
        }
        if state.webhook_includes_analysis and "audioMetadata" in snapshot:
            data["audioMetadata"] = snapshot["audioMetadata"]
        payload = {"event": event, "timestamp": self._now_iso().isoformat(), "data": data}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        for hook in list(state.webhooks.values()):
            if not hook.is_active or event not in hook.events:
                continue
            if state.drop_webhooks:
                state.record_delivery(Delivery(hook.id, job.id, event, None, "dropped", 0.0))
                continue
            copies = 2 if state.duplicate_webhooks else 1
            for _ in range(copies):
                await self._post(hook, job.id, event, raw)

    async def _post(self, hook: FakeWebhook, job_id: str, event: str, raw: bytes) -> None:
        state = self.state
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_payload(raw, hook.secret),
            "User-Agent": "StemSplit-Webhooks/1.0 (stemhub fake)",
        }
        for attempt in range(state.webhook_attempts):
            status: int | None = None
            error: str | None = None
            try:
                response = await self._http.post(hook.url, content=raw, headers=headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            hook.last_called_at = self._now_iso()
            state.record_delivery(
                Delivery(hook.id, job_id, event, status, error, state.clock.monotonic())
            )
            if status is not None and 200 <= status < 300:
                return
            hook.last_error = error or f"HTTP {status}"
            await state.clock.sleep(2.0**attempt)
        hook.fail_count += 1

    async def inspect(self, request: Request) -> Response:
        """``GET /_fake/state``: counters and logs, for a test or bench in another process."""
        state = self.state
        return JSONResponse(
            {
                "counters": dict(state.counters),
                "requestLog": [list(entry) for entry in state.request_log],
                "jobs": {
                    job.id: {"kind": job.kind, "created": job.created, "processS": job.process_s}
                    for job in state.jobs.values()
                },
                "deliveries": [
                    [d.webhook_id, d.job_id, d.event, d.status, d.error, d.at]
                    for d in state.deliveries
                ],
                "rateLimit": state.rate_limit,
                "rateWindowS": state.rate_window_s,
                "maxInWindow": state.max_in_window(),
            }
        )

    async def aclose(self) -> None:
        self._closing.set()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._http.aclose()


def _filtered_stems(audio: Any, rate: int) -> dict[str, Any]:
    """Crude "stems" by masking frequency bands: audio, but not a separation."""
    spectrum = np.fft.rfft(audio, axis=0)
    freqs = np.fft.rfftfreq(audio.shape[0], 1.0 / rate)

    def band(low: float, high: float) -> Any:
        mask = ((freqs >= low) & (freqs < high)).astype(np.float32)[:, None]
        return np.fft.irfft(spectrum * mask, n=audio.shape[0], axis=0).astype(np.float32)

    vocals = band(300, 3400)
    bass = band(0, 160)
    drums = band(5000, rate)
    stems = {
        "vocals": vocals,
        "bass": bass,
        "drums": drums,
        "guitar": band(160, 300),
        "piano": band(3400, 5000),
        "instrumental": audio - vocals,
        "other": audio - vocals - bass - drums,
    }
    return {name: np.clip(value, -1.0, 1.0) for name, value in stems.items()}


def create_fake_stemsplit_app(state: FakeStemSplitState) -> tuple[Starlette, _FakeApi]:
    """The fake as an ASGI app (mount it yourself, or use :func:`run_fake_stemsplit`)."""
    api = _FakeApi(state)
    p = API_PREFIX
    routes = [
        Route(f"{p}/upload", api.api("upload", api.create_upload), methods=["POST"]),
        Route(f"{p}/jobs", api.api("create_job", api.create_job), methods=["POST"]),
        Route(f"{p}/jobs", api.api("list_jobs", api.list_jobs), methods=["GET"]),
        Route(f"{p}/jobs/{{job_id}}", api.api("get_job", api.get_job), methods=["GET"]),
        Route(
            f"{p}/youtube-jobs",
            api.api("create_youtube_job", api.create_youtube_job),
            methods=["POST"],
        ),
        Route(
            f"{p}/youtube-jobs/{{job_id}}",
            api.api("get_youtube_job", api.get_youtube_job),
            methods=["GET"],
        ),
        Route(f"{p}/balance", api.api("balance", api.balance), methods=["GET"]),
        Route(f"{p}/webhooks", api.api("create_webhook", api.create_webhook), methods=["POST"]),
        Route(f"{p}/webhooks", api.api("list_webhooks", api.list_webhooks), methods=["GET"]),
        Route(
            f"{p}/webhooks/{{webhook_id}}",
            api.api("delete_webhook", api.delete_webhook),
            methods=["DELETE"],
        ),
        Route(
            f"{STORAGE_PREFIX}/outputs/{{job_id}}/{{filename}}",
            api.storage("storage_get", api.get_output),
            methods=["GET"],
        ),
        Route(
            f"{STORAGE_PREFIX}/{{key:path}}",
            api.storage("storage_put", api.put_upload),
            methods=["PUT"],
        ),
        Route(INSPECT_PATH, api.inspect, methods=["GET"]),
    ]
    return Starlette(routes=routes), api


@dataclass
class FakeStemSplit:
    """A running fake: where it listens, its state, and the key it accepts."""

    state: FakeStemSplitState
    base_url: str
    api_key: str = DEFAULT_API_KEY

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def counters(self) -> Counter[str]:
        return self.state.counters

    def settings(self, **fields: Any) -> StemSplitSettings:
        """Backend settings that point at this fake (``fields``: ``download_outputs``);
        no ``.env`` is read, so a developer's own key never reaches a test."""
        return StemSplitSettings(
            _env_file=None, api_key=self.api_key, base_url=self.base_url, **fields
        )


@contextlib.asynccontextmanager
async def run_fake_stemsplit(
    *,
    time_factor: float = 1.0,
    anchor: tuple[float, float] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> AsyncIterator[FakeStemSplit]:
    """Serve the fake with uvicorn on loopback for the ``async with`` body.

    ``options`` are :class:`FakeStemSplitState` fields (``processing_s``, ``rate_limit``,
    ``stems_mode``, ...). ``time_factor`` < 1 runs API time faster (see the module doc);
    ``anchor`` shares a :class:`ScaledClock` with another process.
    """
    clock: Clock = (
        ScaledClock(time_factor, anchor) if time_factor != 1.0 or anchor is not None else Clock()
    )
    with tempfile.TemporaryDirectory(prefix="fake-stemsplit-") as tmp:
        state = FakeStemSplitState(clock=clock, data_dir=Path(tmp), **options)
        app, api = create_fake_stemsplit_app(state)
        async with serve_asgi(app, host=host, port=port) as origin:
            try:
                yield FakeStemSplit(state=state, base_url=origin + API_PREFIX)
            finally:
                # before uvicorn stops: ends stalled answers and pending deliveries
                await api.aclose()


async def _serve_until_stopped(args: argparse.Namespace) -> None:
    anchor: tuple[float, float] | None = None
    if args.anchor:
        mono, wall = (float(part) for part in args.anchor.split(","))
        anchor = (mono, wall)
    options: dict[str, Any] = {
        "processing_s": args.processing_s,
        "rate_limit": args.rate_limit,
        "stems_mode": args.stems_mode,
    }
    async with run_fake_stemsplit(
        time_factor=args.time_factor,
        anchor=anchor,
        host=args.host,
        port=args.port,
        **options,
    ) as fake:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"LISTENING {fake.base_url} {fake.api_key}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.stemsplit``: the fake in a process of its own.

    Prints ``LISTENING <base_url> <api_key>`` once it serves; stops on SIGTERM/SIGINT.
    Its counters and logs are at ``GET /_fake/state``.
    """
    parser = argparse.ArgumentParser(description="A local fake of the StemSplit API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--time-factor", type=float, default=1.0)
    parser.add_argument("--anchor", help="MONOTONIC,EPOCH of a ScaledClock to share")
    parser.add_argument("--processing-s", type=float, default=4.0)
    parser.add_argument("--rate-limit", type=int, default=60)
    parser.add_argument("--stems-mode", choices=["filtered", "copy"], default="filtered")
    asyncio.run(_serve_until_stopped(parser.parse_args(argv)))


__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "FIXED_BPM",
    "FIXED_KEY",
    "INSPECT_PATH",
    "ROUTES",
    "Delivery",
    "FakeJob",
    "FakeStemSplit",
    "FakeStemSplitState",
    "FakeUpload",
    "FakeWebhook",
    "Fault",
    "ScaledClock",
    "create_fake_stemsplit_app",
    "run_fake_stemsplit",
    "serve_asgi",
]


if __name__ == "__main__":
    main()
