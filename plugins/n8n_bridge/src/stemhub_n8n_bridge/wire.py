"""The two JSON dialects of the bridge, built from a core :class:`~stemhub.models.Job`.

``/api/v1`` speaks StemSplit: camelCase, statuses PENDING|PROCESSING|COMPLETED|FAILED|
EXPIRED, outputs ``{stem: {url, expiresAt}}``, integer progress and seconds (the
official SDK's models are strict about those). ``/v1`` is for no-code tools: snake_case,
every field always present (n8n's expression editor shows what it can pick), lower-case
statuses, and a download URL per stem that works with the API key alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stemhub import Job, JobStatus, StemSet, stemsplit_wire
from stemhub_n8n_bridge._http import parse_json

Links = dict[str, tuple[str, datetime]]

STEMSPLIT_STATUS: dict[JobStatus, stemsplit_wire.RemoteStatus] = {
    JobStatus.QUEUED: stemsplit_wire.RemoteStatus.PENDING,
    JobStatus.RUNNING: stemsplit_wire.RemoteStatus.PROCESSING,
    JobStatus.COMPLETED: stemsplit_wire.RemoteStatus.COMPLETED,
    JobStatus.FAILED: stemsplit_wire.RemoteStatus.FAILED,
    JobStatus.CANCELLED: stemsplit_wire.RemoteStatus.FAILED,
    JobStatus.EXPIRED: stemsplit_wire.RemoteStatus.EXPIRED,
}


def core_statuses(status: stemsplit_wire.RemoteStatus) -> list[JobStatus]:
    """The core statuses a StemSplit status filter means."""
    return [core for core, remote in STEMSPLIT_STATUS.items() if remote is status]


EXPIRED_MESSAGE = "The stems were deleted after the hub's retention period; split the song again."


def shown_status(job: Job, links: Links) -> JobStatus:
    """The status a client sees: a completed job whose stems are all gone is EXPIRED.

    Retention deletes the files of old jobs; answering COMPLETED with no outputs made
    the StemSplit SDK's ``download_all()`` return nothing without a word, and ``/v1``
    advertised links that answered 404.
    """
    if job.status is JobStatus.COMPLETED and job.outputs and not links:
        return JobStatus.EXPIRED
    return job.status


def event_of(job: Job) -> str:
    return (
        stemsplit_wire.EVENT_COMPLETED
        if job.status is JobStatus.COMPLETED
        else stemsplit_wire.EVENT_FAILED
    )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _duration(job: Job) -> float | None:
    return job.audio.duration_s if job.audio is not None else None


def _size(job: Job) -> int | None:
    if job.audio is not None and job.audio.size_bytes is not None:
        return job.audio.size_bytes
    return job.request.source.size_bytes


PAGE_URL_DESCRIPTION = (
    "The job's result page (play, solo and mute the stems, download them): a signed link "
    "that expires like the stem links. Only for a completed job with stems; null otherwise."
)


class BridgeJob(stemsplit_wire.RemoteJob):
    """A job as ``/api/v1`` shows it: the hosted API's job plus the hub's result page."""

    result_page_url: str | None = Field(default=None, description=PAGE_URL_DESCRIPTION)


def stemsplit_job(
    job: Job, links: Links, *, retention_s: float, page_url: str | None = None
) -> dict[str, Any]:
    """``GET /jobs/{id}`` as the hosted API answers it (``resultPageUrl`` when COMPLETED)."""
    request = job.request
    shown = shown_status(job, links)
    status = STEMSPLIT_STATUS[shown]
    duration = _duration(job)
    seconds = math.ceil(duration) if duration is not None else None
    body: dict[str, Any] = {
        "id": job.id,
        "status": status.value,
        "progress": round(job.progress),
        "createdAt": _iso(job.created_at),
        "startedAt": _iso(job.started_at),
        "completedAt": _iso(job.finished_at) if status.finished else None,
        "input": {
            "fileName": request.source.display_name,
            "durationSeconds": seconds,
            "fileSizeBytes": _size(job),
        },
        "options": {
            "outputType": request.stem_set.value,
            "quality": request.quality.value,
            "outputFormat": request.output_format.value,
        },
        "creditsRequired": seconds,
        "metadata": request.metadata or None,
    }
    if status is stemsplit_wire.RemoteStatus.COMPLETED:
        body["outputs"] = {
            stemsplit_wire.wire_stem_key(stem): {"url": url, "expiresAt": _iso(expires)}
            for stem, (url, expires) in links.items()
        }
        body["creditsCharged"] = seconds
        body["resultPageUrl"] = page_url if links else None
        if job.finished_at is not None:
            body["expiresAt"] = _iso(job.finished_at + timedelta(seconds=retention_s))
    if job.audio is not None and (job.audio.bpm is not None or job.audio.key is not None):
        body["audioMetadata"] = {"bpm": job.audio.bpm, "key": job.audio.key}
    if shown is not job.status:
        body["errorMessage"] = EXPIRED_MESSAGE
        body["errorCode"] = "JOB_EXPIRED"
    elif status in (stemsplit_wire.RemoteStatus.FAILED, stemsplit_wire.RemoteStatus.EXPIRED):
        body["errorMessage"] = job.error_message or "The job did not finish."
        if job.error_code:
            body["errorCode"] = job.error_code
    return {k: v for k, v in body.items() if v is not None}


def event_id(job: Job) -> str:
    """The id of a job's finished event: the same on every delivery and every retry of it."""
    return "evt_" + hashlib.sha256(f"{job.id}:{event_of(job)}".encode()).hexdigest()[:24]


def stemsplit_event(
    job: Job, links: Links, *, retention_s: float, page_url: str | None = None
) -> bytes:
    """The body of a StemSplit webhook delivery for a finished job.

    ``id`` (stable per job and event) and ``timestamp`` sit inside the signed body, so a
    receiver can refuse replays and old captures with what the signature covers.
    """
    snapshot = stemsplit_job(job, links, retention_s=retention_s, page_url=page_url)
    data = {
        "jobId": job.id,
        "status": snapshot["status"],
        "type": "stem",
        "input": snapshot["input"],
        "options": snapshot["options"],
        "outputs": snapshot.get("outputs"),
        "resultPageUrl": snapshot.get("resultPageUrl"),
        "audioMetadata": snapshot.get("audioMetadata"),
        "creditsCharged": snapshot.get("creditsCharged"),
        "errorMessage": snapshot.get("errorMessage"),
        "createdAt": snapshot["createdAt"],
        "completedAt": snapshot.get("completedAt"),
        "metadata": snapshot.get("metadata"),
    }
    payload = {
        "id": event_id(job),
        "event": event_of(job),
        "timestamp": _iso(datetime.now(UTC)),
        "data": {k: v for k, v in data.items() if v is not None},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


V1Status = Literal["queued", "running", "completed", "failed", "cancelled", "expired"]


class V1Stem(BaseModel):
    """One stem: ``download_url`` needs the API key; ``url`` is signed and expires."""

    stem: str
    format: str
    download_url: str
    url: str | None = None
    expires_at: datetime | None = None
    size_bytes: int | None = None


class V1Audio(BaseModel):
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bpm: float | None = None
    key: str | None = None


class V1Error(BaseModel):
    code: str
    message: str


class V1Job(BaseModel):
    """A job as the ``/v1`` API and its webhooks show it."""

    id: str
    status: V1Status
    stage: str
    progress: float = Field(ge=0, le=100)
    finished: bool
    source: str
    stem_set: str
    stems_requested: list[str]
    output_format: str
    quality: str
    stems: dict[str, V1Stem]
    zip_url: str | None
    result_page_url: str | None = Field(description=PAGE_URL_DESCRIPTION)
    audio: V1Audio | None
    error: V1Error | None
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_url: str


class V1Event(BaseModel):
    """A ``/v1`` webhook body (Standard Webhooks: ``type``, ``timestamp``, ``data``)."""

    type: Literal["job.completed", "job.failed"]
    timestamp: datetime
    data: V1Job


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
            return parse_json(value) if value.strip() else {}
        return value

    @field_validator("url", "callback_url", "filename", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class HookCreate(BaseModel):
    """``POST /v1/hooks`` (the REST hooks subscribe call of Zapier and n8n triggers)."""

    target_url: str = Field(max_length=8192)
    events: list[str] = Field(default_factory=lambda: list(stemsplit_wire.WEBHOOK_EVENTS))


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


def v1_job(job: Job, links: Links, *, base_url: str, page_url: str | None = None) -> V1Job:
    request = job.request
    shown = shown_status(job, links)
    done = shown is JobStatus.COMPLETED
    jobs_url = f"{base_url}/v1/jobs/{job.id}"
    stems: dict[str, V1Stem] = {}
    if done:
        for stem, output in job.outputs.items():
            url, expires = links.get(stem, (None, None))
            stems[stem] = V1Stem(
                stem=stem,
                format=output.format.value,
                download_url=f"{jobs_url}/stems/{stem}",
                url=url,
                expires_at=expires,
                size_bytes=output.size_bytes,
            )
    audio = job.audio
    error = None
    if shown is not job.status:
        error = V1Error(code="JOB_EXPIRED", message=EXPIRED_MESSAGE)
    elif job.error_code and job.status is not JobStatus.COMPLETED:
        error = V1Error(code=job.error_code, message=job.error_message or "")
    return V1Job(
        id=job.id,
        status=shown.value.lower(),
        stage=job.stage.value,
        progress=job.progress,
        finished=job.finished,
        source=request.source.display_name,
        stem_set=request.stem_set.value,
        stems_requested=list(request.stem_names),
        output_format=request.output_format.value,
        quality=request.quality.value,
        stems=stems,
        zip_url=f"{jobs_url}/stems.zip" if done else None,
        result_page_url=page_url if done and stems else None,
        audio=V1Audio(
            duration_s=audio.duration_s,
            sample_rate=audio.sample_rate,
            channels=audio.channels,
            bpm=audio.bpm,
            key=audio.key,
        )
        if audio is not None
        else None,
        error=error,
        metadata=request.metadata,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        status_url=jobs_url,
    )


def v1_event(job: Job, links: Links, *, base_url: str, page_url: str | None = None) -> bytes:
    event = V1Event(
        type=event_of(job),
        timestamp=datetime.now(UTC),
        data=v1_job(job, links, base_url=base_url, page_url=page_url),
    )
    return event.model_dump_json().encode()


def parse_stem_set(value: str | None, default: StemSet) -> StemSet:
    if value is None:
        return default
    try:
        return StemSet(value.strip().upper())
    except ValueError:
        known = ", ".join(s.value for s in StemSet)
        raise ValueError(f"outputType must be one of {known}") from None


__all__ = [
    "EXPIRED_MESSAGE",
    "PAGE_URL_DESCRIPTION",
    "STEMSPLIT_STATUS",
    "BridgeJob",
    "HookCreate",
    "Links",
    "SplitOptions",
    "V1Audio",
    "V1Error",
    "V1Event",
    "V1Hook",
    "V1Job",
    "V1Stem",
    "core_statuses",
    "event_id",
    "event_of",
    "parse_stem_set",
    "shown_status",
    "stemsplit_event",
    "stemsplit_job",
    "v1_event",
    "v1_job",
]
