"""Webhook completion for StemSplit jobs: one subscription per hub, and an inbox.

The hub registers ``<public_url>/hooks/stemsplit`` once (``POST /webhooks``) and keeps
the subscription's secret sealed in the store's key-value table (AES-GCM under the
hub's signing key, see :mod:`stemhub._sealing`), never in clear; without a store it stays
in memory only and a restarted hub replaces the subscription. Deliveries are verified
on the raw body in constant time before anything is parsed, then handed to the
:class:`WebhookInbox`, which wakes the job waiting for that remote id. Duplicates are
acknowledged and dropped; events for jobs this hub does not know are acknowledged and
ignored (every subscription of an account receives every job's events).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stemhub.backends.stemsplit.pacing import PRIORITY_START
from stemhub.errors import ErrorCode, StemhubError
from stemhub.stemsplit_wire import (
    SIGNATURE_HEADER,
    Webhook,
    WebhookCreateRequest,
    WebhookEvent,
    WebhookEventData,
    WebhookList,
    error_envelope,
    verify_signature,
)
from stemhub.waiting import wait_event

if TYPE_CHECKING:
    from stemhub._sealing import Sealer
    from stemhub._store import Store
    from stemhub.backends.stemsplit.client import StemSplitClient

log = logging.getLogger("stemhub.backends.stemsplit")

WEBHOOK_PATH = "/hooks/stemsplit"
YOUTUBE_PREFIX = "yt:"
MAX_BODY_BYTES = 1024 * 1024
_KV_NAMESPACE = "stemsplit"
_SEAL_PURPOSE = "stemsplit-webhook-secret"


@dataclass(frozen=True)
class KeptWebhook:
    id: str
    secret: SecretStr


class SecretKeeper(Protocol):
    """Where the subscription's id and secret survive a restart."""

    async def load(self, url: str) -> KeptWebhook | None: ...

    async def save(self, url: str, webhook: KeptWebhook) -> None: ...


class MemorySecretKeeper:
    """Keeps the secret for the life of the process (no store given)."""

    def __init__(self) -> None:
        self._kept: dict[str, KeptWebhook] = {}

    async def load(self, url: str) -> KeptWebhook | None:
        return self._kept.get(url)

    async def save(self, url: str, webhook: KeptWebhook) -> None:
        self._kept[url] = webhook


class StoreSecretKeeper:
    """Keeps the secret sealed in the store's key-value table."""

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    @staticmethod
    def _key(url: str) -> str:
        return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:40]

    async def load(self, url: str) -> KeptWebhook | None:
        value = await self._store.kv_get(_KV_NAMESPACE, self._key(url))
        if not isinstance(value, dict) or value.get("url") != url:
            return None
        try:
            secret = self._sealer.open(str(value["sealed_secret"]), purpose=_SEAL_PURPOSE)
        except (KeyError, StemhubError):
            log.warning("the stored StemSplit webhook secret cannot be opened; replacing it")
            return None
        return KeptWebhook(id=str(value["id"]), secret=SecretStr(secret))

    async def save(self, url: str, webhook: KeptWebhook) -> None:
        sealed = self._sealer.seal(webhook.secret.get_secret_value(), purpose=_SEAL_PURPOSE)
        await self._store.kv_put(
            _KV_NAMESPACE, self._key(url), {"url": url, "id": webhook.id, "sealed_secret": sealed}
        )


class WebhookRegistration:
    """The hub's one subscription: registered on first need, reused across restarts."""

    def __init__(self, keeper: SecretKeeper, *, retry_after_failure_s: float) -> None:
        self._keeper = keeper
        self._retry_s = retry_after_failure_s
        self._lock = asyncio.Lock()
        self.url: str | None = None
        self.webhook_id: str | None = None
        self._secret: SecretStr | None = None
        self._failed_at: float | None = None

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"WebhookRegistration(url={self.url!r}, {state})"

    @property
    def active(self) -> bool:
        return self._secret is not None

    @property
    def secret(self) -> SecretStr | None:
        return self._secret

    async def ensure(self, client: StemSplitClient, url: str) -> bool:
        """Make sure ``url`` is subscribed and its secret known; False means poll instead."""
        if self._secret is not None and self.url == url:
            return True
        now = client.clock.monotonic()
        if self._failed_at is not None and now - self._failed_at < self._retry_s:
            return False
        async with self._lock:
            if self._secret is not None and self.url == url:
                return True
            try:
                await self._register(client, url)
            except StemhubError as error:
                self._failed_at = client.clock.monotonic()
                log.warning(
                    "StemSplit webhook registration failed, polling instead: %s",
                    error.operator_message or error.message,
                )
                return False
            self._failed_at = None
            return True

    async def _register(self, client: StemSplitClient, url: str) -> None:
        kept = await self._keeper.load(url)
        listed = WebhookList.model_validate(
            await client.request("GET", "/webhooks", priority=PRIORITY_START)
        )
        mine = [hook for hook in listed.webhooks if hook.url == url]
        if kept is not None and any(h.id == kept.id and h.is_active for h in mine):
            self.url, self.webhook_id, self._secret = url, kept.id, kept.secret
            return
        for stale in mine:
            # its secret is lost (or it was disabled): a subscription we cannot verify is noise
            await client.request("DELETE", f"/webhooks/{stale.id}", priority=PRIORITY_START)
        created = Webhook.model_validate(
            await client.request(
                "POST",
                "/webhooks",
                json=WebhookCreateRequest(url=url).to_wire(),
                idempotency_key=f"stemhub-webhook-{uuid.uuid4().hex}",
                priority=PRIORITY_START,
            )
        )
        if created.secret is None:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The separation service did not return a webhook secret.",
                operator_message="POST /webhooks answered without a secret",
            )
        await self._keeper.save(url, KeptWebhook(id=created.id, secret=created.secret))
        self.url, self.webhook_id, self._secret = url, created.id, created.secret
        log.info("StemSplit webhook %s registered for %s", created.id, url)


@dataclass
class Waiter:
    """One job waiting for its delivery."""

    woken: asyncio.Event = field(default_factory=asyncio.Event)
    data: WebhookEventData | None = None

    async def wait(self, timeout_s: float) -> WebhookEventData | None:
        """The delivery if one came within ``timeout_s`` real seconds, else None."""
        if self.data is None and timeout_s > 0 and not await wait_event(self.woken, timeout_s):
            return None
        data, self.data = self.data, None
        self.woken.clear()
        return data


@dataclass
class InboxStats:
    accepted: int = 0
    early: int = 0
    duplicates: int = 0
    unknown: int = 0
    rejected: int = 0


class WebhookInbox:
    """Verified deliveries, routed to the waiting jobs by remote id (bounded memory)."""

    def __init__(self, memory: int = 10_000) -> None:
        self._memory = memory
        self._waiters: dict[str, Waiter] = {}
        self._known: OrderedDict[str, None] = OrderedDict()
        self._early: OrderedDict[str, WebhookEventData] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.stats = InboxStats()

    def _remember(self, table: OrderedDict[str, None], key: str) -> None:
        table[key] = None
        table.move_to_end(key)
        while len(table) > self._memory:
            table.popitem(last=False)

    def expect(self, remote_id: str) -> None:
        """A job this hub created: keep its delivery even if it beats the waiter."""
        self._remember(self._known, remote_id)

    def knows(self, remote_id: str) -> bool:
        return remote_id in self._known

    def open(self, remote_id: str) -> Waiter:
        self.expect(remote_id)
        waiter = self._waiters.setdefault(remote_id, Waiter())
        early = self._early.pop(remote_id, None)
        if early is not None:
            waiter.data = early
            waiter.woken.set()
        return waiter

    def close(self, remote_id: str) -> None:
        self._waiters.pop(remote_id, None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def deliver(self, event: WebhookEvent) -> str:
        """Route a verified event: ``accepted``, ``duplicate`` or ``unknown``."""
        data = event.data
        candidates = [YOUTUBE_PREFIX + data.job_id, data.job_id]
        if data.type != "youtube":
            candidates.reverse()
        remote_id = next((c for c in candidates if c in self._waiters or c in self._known), None)
        if remote_id is None:
            self.stats.unknown += 1
            return "unknown"
        seen_key = (remote_id, event.event)
        if seen_key in self._seen:
            self.stats.duplicates += 1
            return "duplicate"
        self._seen[seen_key] = None
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        waiter = self._waiters.get(remote_id)
        if waiter is None:
            self._early[remote_id] = data
            while len(self._early) > self._memory:
                self._early.popitem(last=False)
            self.stats.early += 1
            return "accepted"
        waiter.data = data
        waiter.woken.set()
        self.stats.accepted += 1
        return "accepted"


async def receive(
    request: Request, registration: WebhookRegistration, inbox: WebhookInbox
) -> Response:
    """The ``POST /hooks/stemsplit`` endpoint: verify, parse, route, acknowledge."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        inbox.stats.rejected += 1
        return JSONResponse(error_envelope("PAYLOAD_TOO_LARGE", "Body too large."), 413)
    secret = registration.secret
    if secret is None:
        return JSONResponse(
            error_envelope("NOT_READY", "No webhook subscription is active on this hub."), 503
        )
    if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), secret):
        inbox.stats.rejected += 1
        return JSONResponse(error_envelope("INVALID_SIGNATURE", "Signature mismatch."), 401)
    try:
        event = WebhookEvent.model_validate_json(body)
    except ValidationError:
        inbox.stats.rejected += 1
        return JSONResponse(error_envelope("INVALID_REQUEST", "Not a webhook event."), 400)
    outcome = inbox.deliver(event)
    return JSONResponse({"received": True, "outcome": outcome})


__all__ = [
    "WEBHOOK_PATH",
    "YOUTUBE_PREFIX",
    "InboxStats",
    "KeptWebhook",
    "MemorySecretKeeper",
    "SecretKeeper",
    "StoreSecretKeeper",
    "Waiter",
    "WebhookInbox",
    "WebhookRegistration",
    "receive",
]
