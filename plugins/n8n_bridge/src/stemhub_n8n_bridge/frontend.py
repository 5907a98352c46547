"""The bridge as a frontend: it owns the outbox and turns finished jobs into webhooks.

Delivery does not post anything itself: :meth:`BridgeFrontend.deliver` writes one
message per receiver (the job's callback URL, each matching subscription of the job's
API key) to the persisted outbox, with a dedupe id made of the job, its finish time and
the receiver, so a hub that restarts halfway through a delivery queues nothing twice.
:meth:`BridgeFrontend.run` is the outbox's worker, plus a sweep of old upload files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from stemhub.errors import ErrorCode, StemhubError
from stemhub.frontend import Frontend
from stemhub.models import Job, JobStatus
from stemhub.outbox import Attempt, Outbox, RetryPolicy, SigningScheme
from stemhub_n8n_bridge.keys import ApiKeys
from stemhub_n8n_bridge.metrics import BridgeMetrics
from stemhub_n8n_bridge.settings import PLATFORM, BridgeSettings
from stemhub_n8n_bridge.uploads import Uploads
from stemhub_n8n_bridge.wire import Links, event_of, stemsplit_event, v1_event

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

DIALECT_STEMSPLIT = "stemsplit"
DIALECT_V1 = "v1"
UPLOAD_SWEEP_S = 600.0


class BridgeFrontend(Frontend):
    name = PLATFORM

    def __init__(self, hub: Hub, *, settings: BridgeSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or BridgeSettings()
        hub_settings = hub.settings
        if hub.outputs.public_url is None:
            hub.outputs.public_url = f"http://{hub_settings.http_host}:{hub_settings.http_port}"
            log.warning(
                "STEMHUB_PUBLIC_URL is not set; stem links will point at %s",
                hub.outputs.public_url,
            )
        self.metrics = BridgeMetrics()
        self.keys = ApiKeys(hub.store, hub.sealer, cache_s=self.settings.key_cache_s)
        s = self.settings
        retry = RetryPolicy(
            first_delay_s=s.webhook_first_retry_s,
            window_s=s.webhook_retry_hours * 3600,
            disable_after_failures=s.webhook_disable_after,
            disable_after_s=s.webhook_disable_after_s,
            timeout_s=s.webhook_timeout_s,
        )
        self.outbox = Outbox.for_hub(hub, retry=retry, on_attempt=self._observe)
        self.uploads = Uploads(hub, ttl_s=s.upload_ttl_s)

    @property
    def base_url(self) -> str:
        return self.hub.outputs.public_url or ""

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
            return self.hub.outputs.output_links(job)
        except StemhubError as error:
            if error.code is not ErrorCode.CONFIG_MISSING:
                raise
            return {}

    async def deliver(self, job: Job) -> None:
        """Queue the job.completed / job.failed webhooks of a finished job."""
        key_id = job.origin.api_key_id
        event = event_of(job)
        links = self.links(job)
        retention_s = self.hub.settings.retention_hours * 3600
        finished = job.finished_at.isoformat() if job.finished_at else "unfinished"
        bodies = {
            SigningScheme.STEMSPLIT: stemsplit_event(job, links, retention_s=retention_s),
            SigningScheme.STANDARD: v1_event(job, links, base_url=self.base_url),
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
                dedupe_id=f"{job.id}:{event}:{finished}:callback",
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
                dedupe_id=f"{job.id}:{event}:{finished}:{sub.id}",
                event=event,
                subscription_id=sub.id,
            )


__all__ = ["DIALECT_STEMSPLIT", "DIALECT_V1", "PLATFORM", "BridgeFrontend"]
