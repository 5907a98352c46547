"""pydantic models at every boundary: requests, jobs, outputs, audio facts.

The vocabulary follows the hosted StemSplit API (stem sets, formats, quality) so the
HTTP bridge can speak its dialect without translation tables scattered around.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    """The models here build their validators on first use, not at import: most commands
    (``stemhub --help``, ``doctor``) validate few of them or none."""

    model_config = ConfigDict(defer_build=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class StemSet(StrEnum):
    VOCALS = "VOCALS"
    INSTRUMENTAL = "INSTRUMENTAL"
    BOTH = "BOTH"
    FOUR_STEMS = "FOUR_STEMS"
    SIX_STEMS = "SIX_STEMS"

    @property
    def stems(self) -> tuple[str, ...]:
        return STEMS_BY_SET[self]


STEMS_BY_SET: dict[StemSet, tuple[str, ...]] = {
    StemSet.VOCALS: ("vocals",),
    StemSet.INSTRUMENTAL: ("instrumental",),
    StemSet.BOTH: ("vocals", "instrumental"),
    StemSet.FOUR_STEMS: ("vocals", "drums", "bass", "other"),
    StemSet.SIX_STEMS: ("vocals", "drums", "bass", "guitar", "piano", "other"),
}
ALL_STEMS: frozenset[str] = frozenset(s for stems in STEMS_BY_SET.values() for s in stems)


def smallest_stem_set(stems: list[str] | tuple[str, ...]) -> StemSet:
    """The cheapest stem set whose separation yields every stem named."""
    wanted = set(stems)
    for candidate in (StemSet.BOTH, StemSet.FOUR_STEMS, StemSet.SIX_STEMS):
        if wanted <= set(candidate.stems):
            return candidate
    raise ValueError(f"unknown stems: {sorted(wanted - ALL_STEMS)}")


class OutputFormat(StrEnum):
    WAV = "WAV"
    MP3 = "MP3"
    FLAC = "FLAC"

    @property
    def extension(self) -> str:
        return self.value.lower()


class Quality(StrEnum):
    FAST = "FAST"
    BALANCED = "BALANCED"
    BEST = "BEST"


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED}
)

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    # retry puts a finished job back in the queue
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
    JobStatus.EXPIRED: frozenset({JobStatus.QUEUED}),
    # retention removed the stems of a delivered job
    JobStatus.COMPLETED: frozenset({JobStatus.EXPIRED}),
}


class Stage(StrEnum):
    """Where an unfinished job is in the pipeline; restart recovery resumes here."""

    FETCH = "fetch"
    SEPARATE = "separate"
    DELIVER = "deliver"
    DONE = "done"


class SourceKind(StrEnum):
    FILE = "file"
    URL = "url"
    YOUTUBE = "youtube"


YOUTUBE_HOSTS = ("youtube.com", "youtu.be")


def is_youtube_url(url: str) -> bool:
    """True for http(s) links on YouTube's hosts (``www.``, ``m.``, ``music.`` included)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    return any(host == name or host.endswith("." + name) for name in YOUTUBE_HOSTS)


class Source(_Model):
    """Where the audio comes from.

    ``file``: a local path the frontend already holds (CLI argument, bridge upload).
    ``url``: fetched by the hub with the SSRF guard and size cap; the origin's frontend
    may add auth headers at fetch time (Slack private files) so no token is persisted.
    ``youtube``: handed to a backend that declares YouTube support.
    """

    model_config = ConfigDict(frozen=True)

    kind: SourceKind
    url: str | None = None
    path: str | None = None
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _has_location(self) -> Source:
        if self.kind is SourceKind.FILE and not self.path:
            raise ValueError("a file source needs a path")
        if self.kind in (SourceKind.URL, SourceKind.YOUTUBE) and not self.url:
            raise ValueError(f"a {self.kind.value} source needs a url")
        return self

    @classmethod
    def from_url(cls, url: str, **fields: Any) -> Source:
        """A source for a link someone gave: YouTube links become ``youtube`` sources.

        The one place that tells a YouTube link from any other: the host is one of
        :data:`YOUTUBE_HOSTS` or a subdomain of one (``notyoutube.com`` is not).
        """
        kind = SourceKind.YOUTUBE if is_youtube_url(url) else SourceKind.URL
        return cls(kind=kind, url=url, **fields)

    @property
    def display_name(self) -> str:
        if self.filename:
            return self.filename
        where = self.path or self.url or "audio"
        return where.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "audio"


class Origin(_Model):
    """Who asked and where the answer goes.

    ``platform`` names the frontend that delivers (``cli``, ``discord``, ``slack``,
    ``n8n_bridge``). ``context`` is that frontend's private data for delivering later
    (interaction id, response_url, thread ts, callback URL); nothing else reads it.
    """

    platform: str = "cli"
    user_id: str | None = None
    channel_id: str | None = None
    guild_id: str | None = None
    thread_id: str | None = None
    api_key_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class JobRequest(_Model):
    source: Source
    stems: StemSet | list[str] = StemSet.FOUR_STEMS
    output_format: OutputFormat = OutputFormat.WAV
    quality: Quality = Quality.BALANCED
    origin: Origin = Field(default_factory=Origin)
    backend: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)

    @field_validator("stems", mode="before")
    @classmethod
    def _parse_stems(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in StemSet.__members__:
            return StemSet(value.upper())
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("stems")
    @classmethod
    def _known_stems(cls, value: StemSet | list[str]) -> StemSet | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("name at least one stem")
            unknown = sorted(set(value) - ALL_STEMS)
            if unknown:
                raise ValueError(f"unknown stems {unknown}; known: {sorted(ALL_STEMS)}")
        return value

    @property
    def stem_set(self) -> StemSet:
        """The stem set a backend is asked for."""
        if isinstance(self.stems, StemSet):
            return self.stems
        return smallest_stem_set(self.stems)

    @property
    def stem_names(self) -> tuple[str, ...]:
        """The stems delivered to the person who asked."""
        if isinstance(self.stems, StemSet):
            return self.stems.stems
        return tuple(dict.fromkeys(self.stems))


class AudioInfo(_Model):
    container: str | None = None
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    bpm: float | None = None
    key: str | None = None


class Output(_Model):
    """One delivered stem: a file in the output folder, a remote link, or both."""

    stem: str
    format: OutputFormat
    path: str | None = None
    url: str | None = None
    expires_at: datetime | None = None
    size_bytes: int | None = None
    duration_s: float | None = None


class Job(_Model):
    id: str = Field(default_factory=new_job_id)
    request: JobRequest
    status: JobStatus = JobStatus.QUEUED
    stage: Stage = Stage.FETCH
    progress: float = Field(default=0.0, ge=0.0, le=100.0)
    backend: str | None = None
    remote_id: str | None = None
    input_path: str | None = None
    audio: AudioInfo | None = None
    outputs: dict[str, Output] = Field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    delivery: dict[str, Any] = Field(default_factory=dict)
    version: int = 0
    """Bumped by every write; a write naming an older version is refused (StaleJob)."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def origin(self) -> Origin:
        return self.request.origin

    @property
    def finished(self) -> bool:
        return self.status.finished

    def can_become(self, status: JobStatus) -> bool:
        return status == self.status or status in ALLOWED_TRANSITIONS[self.status]

    @property
    def undelivered(self) -> bool:
        """Delivery ended without reaching the person (``delivery["error"]`` says why)."""
        return self.stage is Stage.DONE and self.delivered_at is None


class BackendCapabilities(_Model):
    """What a backend can do; the hub checks requests against it before any work."""

    stem_sets: frozenset[StemSet]
    formats: frozenset[OutputFormat] = frozenset(OutputFormat)
    max_bytes: int | None = None
    max_duration_s: float | None = None
    url_sources: bool = False
    youtube: bool = False
    analysis: bool = False
    resumable: bool = False
    """A remote id survives a hub restart (hosted API: yes; in-process engine: no)."""
    concurrency: int | None = Field(default=None, ge=1)
    """Separations the backend runs at once on this hub (its worker processes), or None
    for a remote service. A bounded backend's turns are handed out fairly by tenant."""


__all__ = [
    "ALL_STEMS",
    "STEMS_BY_SET",
    "YOUTUBE_HOSTS",
    "AudioInfo",
    "BackendCapabilities",
    "Job",
    "JobRequest",
    "JobStatus",
    "Origin",
    "Output",
    "OutputFormat",
    "Quality",
    "Source",
    "SourceKind",
    "Stage",
    "StemSet",
    "is_youtube_url",
    "new_job_id",
    "smallest_stem_set",
    "utcnow",
]
