"""What a plugin sees of the hub: a narrow, typed interface, never the store.

Frontends, routes and hook implementations get a :class:`PluginHub`. The real
:class:`stemhub.hub.Hub` satisfies it; nothing here lets a plugin write a whole job,
reach the database, or change the hub's settings. Durable plugin state goes through
:class:`KeyValue` (a namespace per plugin), delivery bookkeeping through
:meth:`PluginHub.record_delivery`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stemhub.config import Settings
    from stemhub.frontend import Frontend
    from stemhub.models import BackendCapabilities, Job, JobRequest, JobStatus, Output
    from stemhub.outbox import Attempt, DeliveryLimits, Outbox
    from stemhub.rate_windows import RateWindow
    from stemhub.retry import RetryPolicy


class KeyValue(Protocol):
    """Durable key-value state in the hub's store, namespaced, shared by every hub."""

    namespace: str

    async def get(self, key: str) -> Any | None:
        """The value (JSON-able), or None when absent or expired."""
        ...

    async def put(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Set ``key``; with ``ttl_s`` it reads as absent after that many seconds."""
        ...

    async def add(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Set ``key`` only if absent (or expired): True for the first caller of all hubs."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        ...

    async def items(self, *, limit: int = 1000) -> list[tuple[str, Any]]:
        """Unexpired pairs, ordered by key."""
        ...


class PluginState(Protocol):
    """A plugin's durable state and secrets: all that a plugin's command needs.

    Every :class:`PluginHub` is one; :func:`stemhub.open_plugin_state` gives one without
    a hub (no plugins, backends or recovery), for commands that run beside a hub.
    """

    def kv(self, namespace: str) -> KeyValue: ...

    def seal(self, plaintext: str, *, purpose: str) -> str:
        """Encrypt a secret for storing (AES-GCM under the hub's key, bound to purpose)."""
        ...

    def unseal(self, sealed: str, *, purpose: str) -> str: ...


class PluginHub(PluginState, Protocol):
    """The hub as plugins use it."""

    @property
    def settings(self) -> Settings:
        """The core settings (read them; the hub never re-reads them after opening)."""
        ...

    @property
    def public_url(self) -> str | None:
        """The hub's public base URL, fixed when the hub opens (``STEMHUB_PUBLIC_URL``)."""
        ...

    @property
    def http_url(self) -> str:
        """The base URL clients of the hub's HTTP app use, fixed when the hub opens:
        ``public_url``, else the server's own address (``STEMHUB_HTTP_HOST`` and
        ``STEMHUB_HTTP_PORT``, reachable from this machine only by default)."""
        ...

    # jobs

    async def submit(self, request: JobRequest) -> Job: ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def require_job(self, job_id: str) -> Job: ...

    async def job_by_idempotency_key(self, key: str) -> Job | None: ...

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        platform: str | None = None,
        user_id: str | None = None,
        api_key_id: str | None = None,
        undelivered: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Job]:
        """Newest first; ``undelivered`` keeps jobs whose delivery ended unreached."""
        ...

    async def count_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        api_key_id: str | None = None,
        undelivered: bool = False,
    ) -> int: ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def cancel(self, job_id: str) -> Job: ...

    async def retry(self, job_id: str) -> Job: ...

    async def wait_for(
        self,
        job_id: str,
        *,
        delivered: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline is what callers want
    ) -> Job: ...

    def watch(self, job_id: str, *, poll_s: float = 0.5) -> AsyncIterator[Job]: ...

    async def refresh_links(self, job_id: str) -> Job: ...

    def queue_position(self, job_id: str) -> int | None:
        """How many jobs this hub starts before this one while it waits for a work slot or
        for its backend's turn (an engine that runs few separations at once); None when it
        waits for neither on this hub. Fair by tenant, so it can go down by more than one."""
        ...

    async def record_delivery(self, job: Job) -> None:
        """Persist ``job.delivery`` (a frontend's own record of what it sent), nothing else.

        Guarded like every job write: a copy of the job that another writer overtook is
        refused with ``ErrorCode.CONFLICT`` instead of overwriting newer state.
        """
        ...

    # stems and links

    def links(
        self, job: Job, *, ttl_s: int | None = None, http_clients: bool = False
    ) -> dict[str, tuple[str, datetime]]:
        """Fresh download links per stem (signed local links, else the backend's).

        Signed links start with :attr:`public_url` (none without one); with
        ``http_clients`` they start with :attr:`http_url`, for answers of the hub's HTTP
        app, whose clients reach it there.
        """
        ...

    def output_path(self, job: Job, output: Output) -> Path | None:
        """Where a stem's file lies on this machine, if it has one."""
        ...

    def result_page_url(self, job: Job, *, ttl_s: int | None = None) -> str | None:
        """The signed link to the job's result page (players, waveforms, downloads), or
        None when the hub has no public URL."""
        ...

    def waveform_png(self, job: Job) -> Path | None:
        """A small PNG of every stem's waveform (one row each), made at completion."""
        ...

    def waveform_png_url(self, job: Job, *, ttl_s: int | None = None) -> str | None:
        """A signed link to :meth:`waveform_png`, for image blocks that take a URL."""
        ...

    # backends and frontends

    def choose_backend(self, request: JobRequest) -> tuple[str, str]: ...

    def capabilities(self, backend: str) -> BackendCapabilities: ...

    def input_limits(self, backend: str) -> tuple[int, float]: ...

    def frontend(self, name: str) -> Frontend | None: ...

    def start_frontend(self, name: str) -> Frontend: ...

    # quotas, rate limits, webhooks, secrets (plugin state: PluginState)

    async def take_quota(
        self, scope: str, subject: str, *, limit: int, window_s: float
    ) -> float | None:
        """Count one use against ``limit`` per ``window_s``; seconds to wait when over."""
        ...

    async def hit_rate_window(self, subject: str, *, limit: int, window_s: float) -> RateWindow:
        """Count one request of ``subject`` in fixed windows shared by every hub.

        For per-request limits (``X-RateLimit-*``): counted in memory and written in
        batches, at once past half the limit; refused requests count too. Prefix
        ``subject`` with the plugin's name. Job quotas use :meth:`take_quota`.
        """
        ...

    def outbox(
        self,
        *,
        retry: RetryPolicy | None = None,
        limits: DeliveryLimits | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> Outbox:
        """A persisted, signed webhook outbox on the hub's store (docs/adr/0001).

        Posts follow the rules of :meth:`check_outbound_url`; leases follow the hub's
        (``STEMHUB_LEASE_S``, ``STEMHUB_RECOVERY_INTERVAL_S``), so a message a dead hub
        was posting is sent by another within about their sum. ``retry`` defaults to
        ``WEBHOOK_RETRY``. Make one per plugin and run its worker (``Outbox.run``).
        """
        ...

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key derived from the hub's signing key, distinct per purpose."""
        ...

    def check_outbound_url(self, url: str) -> None:
        """Refuse (``StemhubError``) a URL the hub must not reach: the SSRF rules of fetches."""
        ...

    def work_dir(self, name: str) -> Path:
        """A private scratch folder under the hub's data dir, created on first use."""
        ...


__all__ = ["KeyValue", "PluginHub", "PluginState"]
