"""The hosted StemSplit API as a stemhub backend (builtin plugin ``stemsplit``).

``start`` uploads the job's audio (``POST /upload`` then a streamed PUT), or hands over
a source URL or YouTube link, and creates the remote job with the stemhub job's
Idempotency-Key, so a retried or resumed create never pays twice. ``wait`` finishes by
webhook when the hub has a public URL, and by polling otherwise or when the webhook
is late: the first poll is timed from the job's ``estimatedSeconds``, later ones back
off with jitter, and all jobs of the hub together keep polls to a share of the key's
rate limit. Everything goes through one pooled HTTP client and one pacer per hub (see
:mod:`stemhub.backends.stemsplit.client` and :mod:`stemhub.backends.stemsplit.pacing`).

YouTube jobs live under ``/youtube-jobs``; their remote ids carry a ``yt:`` prefix so a
resumed or refreshed job is looked up in the right place.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.backends.stemsplit.client import (
    LinkRefused,
    StemSplitClient,
    StemSplitTuning,
)
from stemhub.backends.stemsplit.pacing import (
    PRIORITY_FINISH,
    PRIORITY_START,
    Clock,
    QuotaTaker,
    RequestPacer,
    SharedWindow,
)
from stemhub.backends.stemsplit.settings import KEY_SETTING, StemSplitSettings
from stemhub.backends.stemsplit.webhooks import (
    WEBHOOK_PATH,
    YOUTUBE_PREFIX,
    MemorySecretKeeper,
    SecretKeeper,
    StoreSecretKeeper,
    WebhookInbox,
    WebhookRegistration,
    receive,
)
from stemhub.config import Settings
from stemhub.errors import ConfigError, ErrorCode, StemhubError
from stemhub.models import BackendCapabilities, OutputFormat, StemSet
from stemhub.retry import RetryPolicy
from stemhub.stemsplit_wire import (
    DEFAULT_BASE_URL,
    MAX_DURATION_S,
    MAX_UPLOAD_BYTES,
    Balance,
    CreateJobRequest,
    CreateYouTubeJobRequest,
    JobList,
    RemoteJob,
    RemoteStatus,
    WebhookEventData,
)

if TYPE_CHECKING:
    from stemhub._sealing import Sealer
    from stemhub._store import Store
    from stemhub.hub import Hub

log = logging.getLogger("stemhub.backends.stemsplit")


@dataclass
class _Tracked:
    """What this hub knows about a remote job it waits for."""

    since: float
    estimated_s: float | None


class StemSplitBackend(Backend):
    """Separation on the hosted StemSplit API; one instance (one HTTP pool) per hub."""

    name = "stemsplit"
    capabilities = BackendCapabilities(
        stem_sets=frozenset(StemSet),
        formats=frozenset(OutputFormat),
        max_bytes=MAX_UPLOAD_BYTES,
        max_duration_s=MAX_DURATION_S,
        url_sources=True,
        youtube=True,
        analysis=True,
        resumable=True,
    )

    def __init__(
        self,
        settings: Settings,
        stemsplit: StemSplitSettings | None = None,
        *,
        store: Store | None = None,
        sealer: Sealer | None = None,
        tuning: StemSplitTuning | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        quota: QuotaTaker | None = None,
    ) -> None:
        """``stemsplit`` defaults to :class:`StemSplitSettings` read from the environment,
        ``.env`` and ``[stemsplit]``; ``quota`` (the hub) shares the key's rate limit with
        every process on the key."""
        self._settings = settings
        self.stemsplit = stemsplit or StemSplitSettings()
        self.tuning = tuning or StemSplitTuning()
        self.clock = clock or Clock()
        key = self.stemsplit.api_key
        shared = (
            SharedWindow(quota, key.get_secret_value())
            if quota is not None and key is not None and key.get_secret_value()
            else None
        )
        self.pacer = RequestPacer(
            self.tuning.rate_limit,
            self.tuning.rate_window_s,
            burst=self.tuning.burst,
            margin=self.tuning.rate_margin,
            clock=self.clock,
            shared=shared,
        )
        self._transport = transport
        self._client: StemSplitClient | None = None
        keeper: SecretKeeper = (
            StoreSecretKeeper(store, sealer)
            if store is not None and sealer is not None
            else MemorySecretKeeper()
        )
        self.webhooks = WebhookRegistration(
            keeper, retry_after_failure_s=self.tuning.webhook_retry_s
        )
        self.inbox = WebhookInbox()
        self._tracked: dict[str, _Tracked] = {}
        self._polling = 0
        self._rng = random.Random()
        # the one retry policy's formula, with the poller's own numbers
        self.polls = RetryPolicy(
            attempts=1_000_000,
            first_delay_s=self.tuning.poll_min_s,
            max_delay_s=self.tuning.poll_max_s,
            jitter=0.2,
        )

    def __repr__(self) -> str:
        key = "set" if self.stemsplit.has_key else "missing"
        return f"StemSplitBackend(base_url={self.base_url!r}, api_key={key})"

    @property
    def base_url(self) -> str:
        return (self.stemsplit.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def webhook_url(self) -> str | None:
        public = self._settings.public_url
        return public.rstrip("/") + WEBHOOK_PATH if public else None

    @property
    def client(self) -> StemSplitClient:
        """The pooled client, made on first use; without a key, a ConfigError."""
        if self._client is None:
            key: SecretStr | None = self.stemsplit.api_key
            if key is None or not key.get_secret_value():
                raise ConfigError(KEY_SETTING, "missing")
            self._client = StemSplitClient(
                self.base_url,
                key,
                tuning=self.tuning,
                clock=self.clock,
                pacer=self.pacer,
                transport=self._transport,
            )
        return self._client

    async def close(self) -> None:
        await self.pacer.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # starting

    async def start(self, task: SeparationTask) -> str:
        client = self.client
        url = self.webhook_url
        if url is not None:
            # before the create, so the job's delivery has somewhere to go
            await self.webhooks.ensure(client, url)
        options: dict[str, Any] = {
            "output_type": task.stem_set.value,
            "quality": task.quality.value,
            "output_format": task.output_format.value,
            "metadata": {"stemhubJobId": task.job_id},
        }
        prefix = ""
        if task.youtube_url:
            path = "/youtube-jobs"
            prefix = YOUTUBE_PREFIX
            body = CreateYouTubeJobRequest(youtube_url=task.youtube_url, **options).to_wire()
        elif task.input_path is not None:
            ticket = await client.upload(task.input_path, task.filename)
            path = "/jobs"
            body = CreateJobRequest(
                upload_key=ticket.upload_key, file_name=task.filename, **options
            ).to_wire()
        elif task.source_url:
            path = "/jobs"
            body = CreateJobRequest(
                source_url=task.source_url, file_name=task.filename, **options
            ).to_wire()
        else:
            raise StemhubError(
                ErrorCode.INVALID_REQUEST, "There is nothing to separate: no file, link or video."
            )
        data = await client.request(
            "POST", path, json=body, idempotency_key=task.idempotency_key, priority=PRIORITY_START
        )
        job = self._parse_job(data, f"POST {path}")
        remote_id = prefix + job.id
        self._tracked[remote_id] = _Tracked(self.clock.monotonic(), job.estimated_seconds)
        self.inbox.expect(remote_id)
        log.info("job %s is StemSplit job %s", task.job_id, remote_id)
        return remote_id

    # waiting

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        client = self.client
        waiter = self.inbox.open(remote_id)
        try:
            job = await self._wait(client, remote_id, progress, waiter.wait)
        finally:
            self.inbox.close(remote_id)
            self._tracked.pop(remote_id, None)
        return await self._finish(client, task, remote_id, job)

    async def _wait(
        self,
        client: StemSplitClient,
        remote_id: str,
        progress: ProgressCallback,
        delivery: Callable[[float], Awaitable[WebhookEventData | None]],
    ) -> RemoteJob:
        """Wait until the remote job ends; return its final state (outputs included)."""
        tracked = self._tracked.get(remote_id)
        last_progress = -1.0
        if tracked is None:
            # resumed after a restart (or started by another hub): see where it stands
            job = await self._get(remote_id)
            if job.status.finished:
                return job
            left = None
            if job.estimated_seconds is not None:
                left = job.estimated_seconds * (1 - job.progress / 100)
            tracked = _Tracked(self.clock.monotonic(), left)
            self._tracked[remote_id] = tracked
            last_progress = job.progress
            await progress(job.progress, job.status.value.lower())

        url = self.webhook_url
        if url is not None and await self.webhooks.ensure(client, url):
            deadline = self._remaining(tracked) * 1.5 + self.tuning.webhook_grace_s
            data = await delivery(self.clock.to_real(deadline))
            if data is not None:
                delivered = await self._from_delivery(remote_id, data)
                if delivered is not None:
                    return delivered
            else:
                log.info("no webhook for %s in %.0fs; polling", remote_id, deadline)

        self._polling += 1
        try:
            attempt = 0
            while True:
                delay = self._poll_delay(attempt, tracked)
                data = await delivery(self.clock.to_real(delay))
                if data is not None:
                    delivered = await self._from_delivery(remote_id, data)
                    if delivered is not None:
                        return delivered
                job = await self._get(remote_id)
                if job.estimated_seconds is not None and tracked.estimated_s is None:
                    tracked.estimated_s = job.estimated_seconds
                if job.status.finished:
                    return job
                if job.progress != last_progress:
                    last_progress = job.progress
                    await progress(job.progress, job.status.value.lower())
                attempt += 1
        finally:
            self._polling -= 1

    def _remaining(self, tracked: _Tracked) -> float:
        estimate = tracked.estimated_s or self.tuning.default_estimate_s
        return max(0.0, estimate - (self.clock.monotonic() - tracked.since))

    def _poll_delay(self, attempt: int, tracked: _Tracked) -> float:
        """Seconds until the next status check of one job.

        Backoff from ``poll_min_s`` doubling to ``poll_max_s``; never before the job's
        estimate says it could be done (but at least every ``poll_max_s`` for progress);
        and never so often that the hub's pollers together use more than the rate limit
        allows, or more than ``poll_budget_share`` of it while new jobs wait to be
        created. Jitter spreads jobs started together.
        """
        t = self.tuning
        delay = self.polls.delay(attempt + 1, rng=self._rng)
        if tracked.estimated_s is not None:
            remaining = self._remaining(tracked)
            if remaining > delay:
                delay = min(remaining, t.poll_max_s)
        share = t.poll_budget_share if self.pacer.waiting_at(PRIORITY_START) else 1.0
        floor = max(1, self._polling) / (self.pacer.rate * share)
        return max(delay, floor)

    async def _from_delivery(self, remote_id: str, data: WebhookEventData) -> RemoteJob | None:
        """The final job from a verified delivery, or None to go on waiting.

        A delivery without outputs or audio analysis is confirmed with one GET.
        """
        if not data.status.finished:
            return None
        if data.status is RemoteStatus.COMPLETED and (
            not data.outputs or data.audio_metadata is None
        ):
            job = await self._get(remote_id)
            return job if job.status.finished else None
        extra = dict(data.model_extra or {})
        return RemoteJob.model_validate(
            {
                **extra,
                "id": data.job_id,
                "status": data.status,
                "progress": 100.0 if data.status is RemoteStatus.COMPLETED else 0.0,
                "outputs": {k: v.to_wire() for k, v in data.outputs.items()},
                "audioMetadata": data.audio_metadata.to_wire() if data.audio_metadata else None,
                "errorMessage": data.error_message,
                "completedAt": data.completed_at,
                "metadata": data.metadata,
            }
        )

    async def _finish(
        self, client: StemSplitClient, task: SeparationTask, remote_id: str, job: RemoteJob
    ) -> SeparationResult:
        if job.status is RemoteStatus.FAILED:
            reason = job.error_message or "no reason given"
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                f"The separation failed: {reason}.",
                operator_message=f"StemSplit job {remote_id} FAILED: {reason}",
                details={"remote_id": remote_id},
            )
        if job.status is RemoteStatus.EXPIRED:
            raise StemhubError(
                ErrorCode.JOB_EXPIRED,
                "The separation expired at the service before it finished. Please try again.",
                operator_message=f"StemSplit job {remote_id} EXPIRED",
                details={"remote_id": remote_id},
            )
        result = self._result(job, task.stems)
        if self.stemsplit.keeps_stems(self._settings.public_url):
            result = await self._download(client, task, remote_id, result)
        return result

    def _result(self, job: RemoteJob, stems: tuple[str, ...]) -> SeparationResult:
        outputs = job.stem_outputs()
        wanted = stems or tuple(outputs)
        missing = [stem for stem in wanted if stem not in outputs]
        if missing:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                f"The separation finished without the {', '.join(missing)} stem.",
                retryable=False,
                operator_message=f"StemSplit job {job.id} returned {sorted(outputs)}",
            )
        files = {
            stem: StemFile(stem=stem, url=outputs[stem].url, expires_at=outputs[stem].expires_at)
            for stem in wanted
        }
        meta = job.audio_metadata
        return SeparationResult(
            stems=files,
            bpm=meta.bpm if meta else None,
            key=meta.key if meta else None,
            raw=job.to_wire(),
        )

    async def _download(
        self,
        client: StemSplitClient,
        task: SeparationTask,
        remote_id: str,
        result: SeparationResult,
    ) -> SeparationResult:
        """Stream every stem into the job's output folder (operator's choice)."""
        task.out_dir.mkdir(parents=True, exist_ok=True)
        refreshed = False
        for stem, stem_file in result.stems.items():
            target = task.out_dir / f"{stem}.{task.output_format.extension}"
            for _ in range(2):
                try:
                    assert stem_file.url is not None
                    stem_file.size_bytes = await client.download(stem_file.url, target)
                    break
                except LinkRefused:
                    if refreshed:
                        raise StemhubError(
                            ErrorCode.BACKEND_ERROR,
                            "The separated stems could not be downloaded. Try again.",
                            retryable=True,
                            operator_message=f"StemSplit refused fresh links of {remote_id}",
                        ) from None
                    refreshed = True
                    fresh = await self.refresh_outputs(remote_id)
                    for name, fresh_file in fresh.stems.items():
                        if name in result.stems:
                            result.stems[name].url = fresh_file.url
                            result.stems[name].expires_at = fresh_file.expires_at
            stem_file.path = target
        return result

    # other operations

    async def refresh_outputs(self, remote_id: str) -> SeparationResult:
        """Fresh presigned links for a finished job (the old ones expire after ~1 h)."""
        job = await self._get(remote_id)
        if job.status is not RemoteStatus.COMPLETED:
            if job.status.finished:
                raise StemhubError(
                    ErrorCode.JOB_EXPIRED
                    if job.status is RemoteStatus.EXPIRED
                    else ErrorCode.BACKEND_ERROR,
                    "This job has no stems to link to any more.",
                    operator_message=f"StemSplit job {remote_id} is {job.status.value}",
                )
            raise StemhubError(ErrorCode.CONFLICT, "This job is still being separated.")
        return self._result(job, ())

    async def cancel(self, remote_id: str) -> None:
        """The API has no cancel: the remote job runs out and its result is dropped."""
        self._tracked.pop(remote_id, None)

    async def describe(self) -> dict[str, Any]:
        """Balance and setup facts for ``stemhub doctor``."""
        balance = await self.balance()
        minutes = balance.balance_seconds / 60
        return {
            "base_url": self.base_url,
            "balance_seconds": balance.balance_seconds,
            "balance": balance.balance_formatted or f"{minutes:.0f} minutes",
            "completion": "webhook" if self.webhook_url else "polling",
            "rate_limit_per_min": round(self.pacer.limit * 60 / self.pacer.window_s),
        }

    async def balance(self) -> Balance:
        """The account's credit (``GET /balance``), for doctor and quota logic."""
        data = await self.client.request("GET", "/balance", priority=PRIORITY_FINISH)
        try:
            return Balance.model_validate(data)
        except ValidationError:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The separation service sent a balance stemhub could not read.",
                retryable=True,
            ) from None

    async def list_jobs(
        self, *, limit: int = 20, offset: int = 0, status: RemoteStatus | None = None
    ) -> JobList:
        """One page of the account's jobs (``limit`` at most 100)."""
        data = await self.client.request(
            "GET",
            "/jobs",
            params={"limit": limit, "offset": offset, "status": status.value if status else None},
            priority=PRIORITY_FINISH,
        )
        try:
            return JobList.model_validate(data)
        except ValidationError:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The separation service sent a job list stemhub could not read.",
            ) from None

    async def iter_jobs(
        self, *, status: RemoteStatus | None = None, page_size: int = 100
    ) -> AsyncIterator[RemoteJob]:
        """Every job of the account, page by page."""
        offset = 0
        while True:
            page = await self.list_jobs(limit=page_size, offset=offset, status=status)
            for job in page.jobs:
                yield job
            if not page.pagination.has_more or not page.jobs:
                return
            offset += len(page.jobs)

    async def _get(self, remote_id: str) -> RemoteJob:
        if remote_id.startswith(YOUTUBE_PREFIX):
            path = f"/youtube-jobs/{remote_id[len(YOUTUBE_PREFIX) :]}"
        else:
            path = f"/jobs/{remote_id}"
        data = await self.client.request("GET", path, priority=PRIORITY_FINISH)
        return self._parse_job(data, f"GET {path}")

    @staticmethod
    def _parse_job(data: Any, what: str) -> RemoteJob:
        try:
            return RemoteJob.model_validate(data)
        except ValidationError as exc:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The separation service sent a job stemhub could not read. Try again.",
                retryable=True,
                operator_message=f"StemSplit {what}: {exc.error_count()} unreadable fields",
            ) from None

    # the webhook receiver

    async def receive_webhook(self, request: Request) -> Response:
        """Starlette endpoint for deliveries (mounted at :data:`WEBHOOK_PATH`)."""
        return await receive(request, self.webhooks, self.inbox)

    def webhook_route(self) -> Route:
        return Route(WEBHOOK_PATH, self.receive_webhook, methods=["POST"])


def make_backend(hub: Hub, stemsplit: StemSplitSettings | None = None) -> StemSplitBackend:
    return StemSplitBackend(hub.settings, stemsplit, store=hub.store, sealer=hub.sealer, quota=hub)


__all__ = [
    "WEBHOOK_PATH",
    "StemSplitBackend",
    "StemSplitSettings",
    "StemSplitTuning",
    "make_backend",
]
