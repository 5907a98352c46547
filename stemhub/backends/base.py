"""The one protocol every separation backend speaks.

A backend is started with a :class:`SeparationTask` and returns an id (the remote job
id for the hosted API, an engine id for the embedded engine). The hub persists that id
before it waits, so a restarted hub can resume a ``resumable`` backend's job by id
instead of paying for it twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import BackendCapabilities, OutputFormat, Quality, StemSet


class ProgressCallback(Protocol):
    async def __call__(self, percent: float, message: str | None = None) -> None: ...


class SeparationTask(BaseModel):
    """Everything a backend needs to separate one job, and nothing about chat platforms."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    job_id: str
    stem_set: StemSet
    stems: tuple[str, ...]
    output_format: OutputFormat
    quality: Quality = Quality.BALANCED
    input_path: Path | None = None
    source_url: str | None = None
    youtube_url: str | None = None
    filename: str = "audio"
    out_dir: Path
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Stable per stemhub job, so a retried create never makes two remote jobs."""
        return f"stemhub-{self.job_id}"


class StemFile(BaseModel):
    """One separated stem: a local file (``path``) or a remote link (``url``)."""

    stem: str
    path: Path | None = None
    url: str | None = None
    expires_at: datetime | None = None
    size_bytes: int | None = None
    duration_s: float | None = None


class SeparationResult(BaseModel):
    stems: dict[str, StemFile]
    bpm: float | None = None
    key: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class Backend(ABC):
    """Base class for backends. Subclasses set ``name`` and ``capabilities``."""

    name: ClassVar[str]
    capabilities: BackendCapabilities

    @abstractmethod
    async def start(self, task: SeparationTask) -> str:
        """Begin separating; return an id the hub persists before calling :meth:`wait`."""

    @abstractmethod
    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        """Wait until the job ``remote_id`` finishes; report progress; raise StemhubError."""

    async def cancel(self, remote_id: str) -> None:  # noqa: B027 - optional capability
        """Stop the job if the backend can; the hub marks the job cancelled either way."""

    async def refresh_outputs(self, remote_id: str) -> SeparationResult:
        """Fresh links for a finished job (presigned links expire)."""
        raise StemhubError(
            ErrorCode.BACKEND_ERROR, f"The {self.name} backend cannot refresh links."
        )

    async def describe(self) -> dict[str, Any]:
        """Facts for ``stemhub doctor`` (balance, engine version, weights found)."""
        return {}

    async def close(self) -> None:  # noqa: B027 - optional capability
        """Release pools and clients; called once when the hub stops."""


__all__ = [
    "Backend",
    "ProgressCallback",
    "SeparationResult",
    "SeparationTask",
    "StemFile",
]
