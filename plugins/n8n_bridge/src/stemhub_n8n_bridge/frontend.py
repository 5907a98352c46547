"""The bridge as a frontend: it owns the outbox and turns finished jobs into webhooks.

Delivery does not post anything itself: :meth:`BridgeFrontend.deliver` writes one
message per receiver (the job's callback URL, each matching subscription of the job's
API key) to the persisted outbox, with a dedupe id made of the job, the event and the
receiver (never a time a rerun of delivery would change), so a hub that restarts halfway
through a delivery, or delivers again, queues nothing twice.
:meth:`BridgeFrontend.run` is the outbox's worker, plus a sweep of old upload files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from stemhub import (
    WEBHOOK_RETRY,
    Attempt,
    DeliveryLimits,
    ErrorCode,
    Frontend,
    Job,
    JobStatus,
    SigningScheme,
    StemhubError,
)
from stemhub_n8n_bridge.handlers import page_url
from stemhub_n8n_bridge.keys import ApiKeys
from stemhub_n8n_bridge.metrics import BridgeMetrics
from stemhub_n8n_bridge.reads import RecentReads
from stemhub_n8n_bridge.settings import PLATFORM, BridgeSettings
from stemhub_n8n_bridge.uploads import Uploads
from stemhub_n8n_bridge.wire import Links, event_of, stemsplit_event, v1_event

if TYPE_CHECKING:
    from stemhub import PluginHub

log = logging.getLogger(__name__)

DIALECT_STEMSPLIT = "stemsplit"
DIALECT_V1 = "v1"
UPLOAD_SWEEP_S = 600.0


class BridgeFrontend(Frontend):
    name = PLATFORM

    def __init__(self, hub: PluginHub, *, settings: BridgeSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or BridgeSettings()
        if hub.public_url is None:
            log.warning(
                "STEMHUB_PUBLIC_URL is not set; the bridge's links point at %s", hub.http_url
            )
        self.metrics = BridgeMetrics()
        self.keys = ApiKeys(hub, cache_s=self.settings.key_cache_s)
        s = self.settings
        retry = WEBHOOK_RETRY.with_(
            first_delay_s=s.webhook_first_retry_s, window_s=s.webhook_retry_hours * 3600
        )
        limits = DeliveryLimits(
            deadline_s=s.webhook_timeout_s,
            per_target=s.webhook_per_target,
            concurrency=max(s.webhook_per_target, s.webhook_concurrency),
            max_response_bytes=s.webhook_max_response_bytes,
            disable_after_failures=s.webhook_disable_after,
            disable_after_s=s.webhook_disable_after_s,
        )
        self.outbox = hub.outbox(retry=retry, limits=limits, on_attempt=self._observe)
        self.uploads = Uploads(hub, ttl_s=s.upload_ttl_s)
        self.reads = RecentReads(s.read_cache_s)

    @property
    def base_url(self) -> str:
        """Where the bridge's clients reach the hub (fixed when the hub opened)."""
        return self.hub.http_url

    def _observe(self, attempt: Attempt) -> None:
        self.metrics.webhook_attempt(attempt)

    async def run(self) -> None:
        sweeper = asyncio.create_task(self._sweep_uploads())
        try:
            await self.outbox.run(poll_s=self.settings.outbox_poll_s)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _sweep_uploads(self) -> None:
        keep_s = self.settings.upload_ttl_s + self.hub.settings.retention_hours * 3600
        while True:
            removed = await asyncio.to_thread(self.uploads.cleanup, keep_s)
            if removed:
                log.info("removed %d old uploads", removed)
            await asyncio.sleep(UPLOAD_SWEEP_S)

    def links(self, job: Job) -> Links:
        """Fresh signed links of a completed job's stems (empty before it completes)."""
        if job.status is not JobStatus.COMPLETED:
            return {}
        try:
            return self.hub.links(job, http_clients=True)
        except StemhubError as error:
            if error.code is not ErrorCode.CONFIG_MISSING:
                raise
            return {}

    async def notify_undelivered(self, job: Job, error: StemhubError) -> None:
        """Queueing the job's webhooks failed for good (the store was down throughout).

        A bridge client has no inbox to write to: the job itself (``GET /v1/jobs/{id}``,
        ``GET /api/v1/jobs/{id}``) is where it learns the result, and it stays readable
        there; the operator gets the reason in the log.
        """
        log.warning(
            "webhooks of job %s (key %s) were not queued: %s",
            job.id,
            job.origin.api_key_id,
            error.code.value,
        )

    async def deliver(self, job: Job) -> None:
        """Queue the job.completed / job.failed webhooks of a finished job."""
        key_id = job.origin.api_key_id
        event = event_of(job)
        links = self.links(job)
        retention_s = self.hub.settings.retention_hours * 3600
        page = page_url(self, job, links)
        bodies = {
            SigningScheme.STEMSPLIT: stemsplit_event(
                job, links, retention_s=retention_s, page_url=page
            ),
            SigningScheme.STANDARD: v1_event(job, links, base_url=self.base_url, page_url=page),
        }
        context = job.origin.context
        callback = context.get("callback_url")
        if isinstance(callback, str) and callback and key_id:
            scheme = (
                SigningScheme.STEMSPLIT
                if context.get("dialect") == DIALECT_STEMSPLIT
                else SigningScheme.STANDARD
            )
            await self.outbox.enqueue(
                callback,
                bodies[scheme],
                dedupe_id=f"{job.id}:{event}:callback",
                event=event,
                scheme=scheme,
                secret=await self.keys.webhook_secret(key_id),
            )
        if key_id is None:
            return
        for sub in await self.outbox.subscriptions(key_id, event=event, active_only=True):
            await self.outbox.enqueue(
                sub.target_url,
                bodies.get(sub.scheme, bodies[SigningScheme.STANDARD]),
                dedupe_id=f"{job.id}:{event}:{sub.id}",
                event=event,
                subscription_id=sub.id,
            )


__all__ = ["DIALECT_STEMSPLIT", "DIALECT_V1", "PLATFORM", "BridgeFrontend"]
