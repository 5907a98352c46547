"""The StemSplit REST dialect: every request, response, error and webhook body.

One set of pydantic models serves both sides of the wire: the StemSplit backend reads
them from the hosted API, and the fake server and the n8n bridge write them. Python
attributes are snake_case, the wire is camelCase (``model_dump(by_alias=True)`` or
:meth:`WireModel.to_wire`). Every model keeps fields it does not know
(``extra="allow"``) so a newer server never breaks an older hub, and job statuses go
through :func:`normalize_status`, which also understands the older tutorial dialect's
lower-case words and reads anything unknown as "still running".

Webhook deliveries are signed ``X-Webhook-Signature: sha256=<hex>``, the HMAC-SHA256 of
the raw request body under the subscription's secret; :func:`sign_payload` and
:func:`verify_signature` implement both ends.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

DEFAULT_BASE_URL = "https://stemsplit.io/api/v1"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DURATION_S = 3600.0
DEFAULT_RATE_LIMIT = 60
RATE_LIMIT_WINDOW_S = 60.0
LINK_TTL_S = 3600.0

SIGNATURE_HEADER = "X-Webhook-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_COMPLETED = "job.completed"
EVENT_FAILED = "job.failed"
WEBHOOK_EVENTS: tuple[str, ...] = (EVENT_COMPLETED, EVENT_FAILED)

REVEAL_SECRETS = "reveal_secrets"
"""Serialization context key: ``model_dump(context={REVEAL_SECRETS: True})`` writes a
webhook secret in clear (only the create-webhook response may); otherwise it is masked."""


class ApiErrorCode(StrEnum):
    """The ``error.code`` strings the API documents (others may appear; keep them)."""

    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    AUDIO_TOO_LONG = "AUDIO_TOO_LONG"
    AUDIO_TOO_SHORT = "AUDIO_TOO_SHORT"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    INVALID_REQUEST = "INVALID_REQUEST"
    MISSING_API_KEY = "MISSING_API_KEY"
    INVALID_API_KEY = "INVALID_API_KEY"
    API_KEY_REVOKED = "API_KEY_REVOKED"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class RemoteStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"

    @property
    def finished(self) -> bool:
        return self in (RemoteStatus.COMPLETED, RemoteStatus.FAILED, RemoteStatus.EXPIRED)


_STATUS_WORDS: dict[str, RemoteStatus] = {
    "pending": RemoteStatus.PENDING,
    "queued": RemoteStatus.PENDING,
    "waiting": RemoteStatus.PENDING,
    "created": RemoteStatus.PENDING,
    "processing": RemoteStatus.PROCESSING,
    "running": RemoteStatus.PROCESSING,
    "in_progress": RemoteStatus.PROCESSING,
    "started": RemoteStatus.PROCESSING,
    "completed": RemoteStatus.COMPLETED,
    "complete": RemoteStatus.COMPLETED,
    "succeeded": RemoteStatus.COMPLETED,
    "success": RemoteStatus.COMPLETED,
    "done": RemoteStatus.COMPLETED,
    "finished": RemoteStatus.COMPLETED,
    "failed": RemoteStatus.FAILED,
    "failure": RemoteStatus.FAILED,
    "error": RemoteStatus.FAILED,
    "errored": RemoteStatus.FAILED,
    "expired": RemoteStatus.EXPIRED,
}


def normalize_status(raw: object) -> RemoteStatus:
    """Map any status word to :class:`RemoteStatus`; unknown words mean still running.

    A status the hub has never seen must not end a job (it could be a new
    intermediate stage), so it reads as PROCESSING and polling goes on.
    """
    if isinstance(raw, RemoteStatus):
        return raw
    word = str(raw or "").strip().lower().replace("-", "_").replace(" ", "_")
    return _STATUS_WORDS.get(word, RemoteStatus.PROCESSING)


def stem_key(wire_name: str) -> str:
    """The stemhub stem name of an ``outputs`` key (``fullAudio`` -> ``full_audio``)."""
    out = "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in wire_name)
    return out.lstrip("_").lower()


def wire_stem_key(stem: str) -> str:
    """The ``outputs`` key of a stemhub stem name (``full_audio`` -> ``fullAudio``)."""
    return to_camel(stem)


_CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".webm": "audio/webm",
}


def content_type_for(filename: str) -> str:
    """The Content-Type an upload of ``filename`` declares (the API keys on it)."""
    suffix = os.path.splitext(filename)[1].lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "audio/mpeg"


class WireModel(BaseModel):
    """Base of every wire body: camelCase aliases, unknown fields kept."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        alias_generator=to_camel,
        protected_namespaces=(),
    )

    def to_wire(self, **context: Any) -> dict[str, Any]:
        """The JSON body as the API writes it (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, context=context)


class ErrorBody(WireModel):
    code: str
    message: str
    required_seconds: int | None = None
    purchase_url: str | None = None


class ErrorEnvelope(WireModel):
    """``{"error": {"code": ..., "message": ...}}``, the body of every non-2xx answer."""

    error: ErrorBody


def error_envelope(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error body ready for ``JSONResponse`` (extra fields in camelCase)."""
    return ErrorEnvelope(error=ErrorBody(code=code, message=message, **extra)).to_wire()


class UploadRequest(WireModel):
    """``POST /upload``."""

    filename: str
    content_type: str | None = None


class UploadTicket(WireModel):
    """``POST /upload`` answer: PUT the bytes to ``upload_url`` (no Authorization)."""

    upload_url: str
    upload_key: str
    expires_at: datetime | None = None
    max_file_size_bytes: int | None = None
    max_file_size_mb: int | None = None
    content_type: str | None = None


class CreateJobRequest(WireModel):
    """``POST /jobs``: exactly one of ``upload_key`` and ``source_url``."""

    upload_key: str | None = None
    source_url: str | None = None
    file_name: str | None = None
    output_type: str | None = None
    quality: str | None = None
    output_format: str | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None


class CreateYouTubeJobRequest(WireModel):
    """``POST /youtube-jobs``."""

    youtube_url: str
    output_type: str | None = None
    quality: str | None = None
    output_format: str | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None


class OutputFile(WireModel):
    """One presigned stem link; valid for about an hour, refreshed by ``GET /jobs/{id}``."""

    url: str
    expires_at: datetime | None = None


class AudioMetadata(WireModel):
    bpm: float | None = None
    key: str | None = None


class JobInput(WireModel):
    file_name: str | None = None
    duration_seconds: float | None = None
    file_size_bytes: int | None = None


class JobOptions(WireModel):
    output_type: str | None = None
    quality: str | None = None
    output_format: str | None = None


def _outputs_before(value: Any) -> Any:
    """Accept ``{stem: {url, expiresAt}}``, the older ``{stem: "url"}``, and nulls."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for name, item in value.items():
        if item is None:
            continue
        out[str(name)] = {"url": item} if isinstance(item, str) else item
    return out


class RemoteJob(WireModel):
    """A job as ``GET /jobs/{id}`` (and ``GET /youtube-jobs/{id}``) returns it.

    ``status`` is normalised on the way in; :attr:`raw_status` keeps the word the server
    sent so a new status can be logged. Output keys stay as the wire names them
    (``fullAudio``); :meth:`stem_outputs` gives them stemhub's names.
    """

    id: str
    status: RemoteStatus = RemoteStatus.PENDING
    raw_status: str | None = Field(default=None, exclude=True)
    progress: float = 0.0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    input: JobInput | None = None
    options: JobOptions | None = None
    outputs: dict[str, OutputFile] = Field(default_factory=dict)
    audio_metadata: AudioMetadata | None = None
    credits_required: float | None = None
    credits_charged: float | None = None
    estimated_seconds: float | None = None
    error_message: str | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_status(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "status" in data and "rawStatus" not in data:
            return {**data, "rawStatus": str(data["status"])}
        return data

    @field_validator("status", mode="before")
    @classmethod
    def _normalize(cls, value: Any) -> RemoteStatus:
        return normalize_status(value)

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, value: Any) -> float:
        try:
            number = float(value or 0)
        except (TypeError, ValueError):
            return 0.0
        return max(0.0, min(100.0, number))

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        return _outputs_before(value)

    def stem_outputs(self) -> dict[str, OutputFile]:
        return {stem_key(name): item for name, item in self.outputs.items()}


class Pagination(WireModel):
    total: int = 0
    limit: int = 20
    offset: int = 0
    has_more: bool = False


class JobList(WireModel):
    """``GET /jobs?limit&offset&status``."""

    jobs: list[RemoteJob] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


class Balance(WireModel):
    """``GET /balance``."""

    balance_seconds: float
    balance_minutes: float | None = None
    balance_formatted: str | None = None
    updated_at: datetime | None = None


class WebhookCreateRequest(WireModel):
    """``POST /webhooks``."""

    url: str
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))


class Webhook(WireModel):
    """A webhook subscription. ``secret`` comes only in the create answer.

    The secret is a :class:`SecretStr`: it never shows in a repr or a log line, and
    serializes masked unless the caller passes ``context={REVEAL_SECRETS: True}``.
    """

    id: str
    url: str
    events: list[str] = Field(default_factory=list)
    is_active: bool = True
    fail_count: int = 0
    last_error: str | None = None
    last_called_at: datetime | None = None
    created_at: datetime | None = None
    secret: SecretStr | None = None

    @field_serializer("secret")
    def _secret_out(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        if value is None:
            return None
        context = info.context or {}
        return value.get_secret_value() if context.get(REVEAL_SECRETS) else "**********"


class WebhookList(WireModel):
    """``GET /webhooks``."""

    webhooks: list[Webhook] = Field(default_factory=list)


class WebhookEventData(WireModel):
    """The ``data`` of a delivery: the job as it ended (``type`` is ``youtube`` for those)."""

    job_id: str
    status: RemoteStatus = RemoteStatus.PROCESSING
    type: str | None = None
    input: dict[str, Any] | None = None
    options: JobOptions | None = None
    outputs: dict[str, OutputFile] = Field(default_factory=dict)
    audio_metadata: AudioMetadata | None = None
    credits_charged: float | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _normalize(cls, value: Any) -> RemoteStatus:
        return normalize_status(value)

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        return _outputs_before(value)


class WebhookEvent(WireModel):
    """One delivery: ``{"event": "job.completed", "timestamp": ..., "data": {...}}``."""

    event: str
    timestamp: datetime | None = None
    data: WebhookEventData


@dataclass(frozen=True)
class RateLimitInfo:
    """The ``X-RateLimit-*`` and ``Retry-After`` headers of one response.

    ``reset`` is what the server sent: an epoch time in seconds (values above 10^9) or,
    from some proxies, seconds from now; :meth:`reset_in` turns either into a delay.
    """

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    retry_after: float | None = None

    def reset_in(self, now_epoch: float) -> float | None:
        if self.reset is None:
            return None
        if self.reset > 1e9:
            return max(0.0, self.reset - now_epoch)
        return max(0.0, self.reset)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo:
    """Read the rate-limit headers (names case-insensitive with httpx/Starlette headers)."""
    limit = _number(headers, "x-ratelimit-limit")
    remaining = _number(headers, "x-ratelimit-remaining")
    return RateLimitInfo(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset=_number(headers, "x-ratelimit-reset"),
        retry_after=_number(headers, "retry-after"),
    )


def _secret_bytes(secret: str | SecretStr) -> bytes:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return value.encode("utf-8")


def sign_payload(body: bytes, secret: str | SecretStr) -> str:
    """The ``X-Webhook-Signature`` value for ``body``: ``sha256=<hex>``."""
    digest = hmac.new(_secret_bytes(secret), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, signature: str | None, secret: str | SecretStr) -> bool:
    """Whether ``signature`` signs the raw ``body``; constant-time, bare hex accepted.

    Verify the bytes as received: re-serialized JSON differs in whitespace and order.
    """
    if not signature:
        return False
    candidate = signature.strip()
    if candidate.lower().startswith("sha256="):
        candidate = candidate[len("sha256=") :]
    expected = hmac.new(_secret_bytes(secret), body, hashlib.sha256).hexdigest()
    given = candidate.lower().encode("ascii", "replace")
    return hmac.compare_digest(expected.encode("ascii"), given)


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RATE_LIMIT",
    "EVENT_COMPLETED",
    "EVENT_FAILED",
    "IDEMPOTENCY_HEADER",
    "LINK_TTL_S",
    "MAX_DURATION_S",
    "MAX_UPLOAD_BYTES",
    "RATE_LIMIT_WINDOW_S",
    "REVEAL_SECRETS",
    "SIGNATURE_HEADER",
    "WEBHOOK_EVENTS",
    "ApiErrorCode",
    "AudioMetadata",
    "Balance",
    "CreateJobRequest",
    "CreateYouTubeJobRequest",
    "ErrorBody",
    "ErrorEnvelope",
    "JobInput",
    "JobList",
    "JobOptions",
    "OutputFile",
    "Pagination",
    "RateLimitInfo",
    "RemoteJob",
    "RemoteStatus",
    "UploadRequest",
    "UploadTicket",
    "Webhook",
    "WebhookCreateRequest",
    "WebhookEvent",
    "WebhookEventData",
    "WebhookList",
    "WireModel",
    "content_type_for",
    "error_envelope",
    "normalize_status",
    "parse_rate_limit",
    "sign_payload",
    "stem_key",
    "verify_signature",
    "wire_stem_key",
]
