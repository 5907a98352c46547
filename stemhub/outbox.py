"""A persisted outbox for outbound webhooks: at least once, signed, retried for a day.

A frontend that must tell another system something (a job finished) writes the message
to the store with :meth:`Outbox.enqueue` and moves on; :meth:`Outbox.run` posts it.
Writing first means a hub killed between "the job finished" and "the receiver heard"
still delivers after a restart, and a receiver that is down for hours still gets the
message: failed posts are retried with exponential backoff (5 s doubling to an hour
between attempts) until ``RetryPolicy.window_s`` (26 h) has passed since it was queued.

Every message has a stable id (``webhook-id`` / ``X-Webhook-Id``) that stays the same on
each retry, so receivers deduplicate; the caller's ``dedupe_id`` makes a second enqueue
of the same event (a delivery repeated after a crash) a no-op. Signatures are made at
send time, not when queued: Standard Webhooks signs the attempt's timestamp, which a
receiver checks against its clock to refuse replays.

Subscriptions (``subscribe``) are the receivers a client registered; one that keeps
failing is disabled with the reason kept (``disabled_reason``), so the API can show why
deliveries stopped. A receiver answering ``410 Gone`` unsubscribes at once (the REST
hooks convention), and so does a target the SSRF guard refuses.

Targets are user-given URLs: every post goes through
:func:`stemhub.fetch.guarded_client`, so private and metadata addresses are refused at
connect time, after DNS resolution, unless the hub's settings allow them.

A worker leases the messages it posts, as a hub leases its jobs: for ``lease_s``,
renewed every third of it while the post lasts, and a worker looks for due messages and
lapsed leases at least every ``recovery_interval_s``. A hub that dies mid-post leaves
its messages to another hub within about ``lease_s + recovery_interval_s``; plugins get
an outbox on the hub's own policy from :meth:`stemhub.PluginHub.outbox`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from stemhub._store import metadata
from stemhub.errors import ErrorCode, StemhubError
from stemhub.fetch import FetchPolicy, Resolver, _retry_after, check_url, guarded_client, redact_url
from stemhub.retry import RetryPolicy
from stemhub.stemsplit_wire import SIGNATURE_HEADER, sign_payload

if TYPE_CHECKING:
    from stemhub._sealing import Sealer
    from stemhub._store import Store

log = logging.getLogger(__name__)

USER_AGENT = "stemhub-webhooks/0.1"
_SEALED_BODY = b"sealed-body:"

outbox_subscriptions = sa.Table(
    "outbox_subscriptions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False, index=True),
    sa.Column("target_url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("scheme", sa.String(16), nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("fail_count", sa.Integer, nullable=False),
    sa.Column("failing_since", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_called_at", sa.Float, nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

outbox_messages = sa.Table(
    "outbox_messages",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("dedupe_key", sa.String(255), nullable=False, unique=True),
    sa.Column("subscription_id", sa.String(40), nullable=True, index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("target_url", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("scheme", sa.String(16), nullable=False),
    sa.Column("secret", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("deliver_until", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),
)


class SigningScheme(StrEnum):
    """How a message is signed when it is sent."""

    NONE = "none"
    STEMSPLIT = "stemsplit"
    """``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` (StemSplit)."""
    STANDARD = "standard"
    """Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``."""


class MessageStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form ``whsec_<base64 of 24 bytes>``.

    StemSplit-style receivers use the whole string as the HMAC key; Standard Webhooks
    receivers decode the base64 part. Both libraries accept this form.
    """
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _standard_key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    scheme: SigningScheme, secret: str | None, msg_id: str, event: str, body: bytes, now: float
) -> dict[str, str]:
    """The headers that sign one attempt of a message."""
    if scheme is SigningScheme.STANDARD and secret:
        timestamp = int(now)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(secret, msg_id, timestamp, body),
        }
    headers = {"X-Webhook-Id": msg_id, "X-Webhook-Event": event}
    if scheme is SigningScheme.STEMSPLIT and secret:
        headers[SIGNATURE_HEADER] = sign_payload(body, secret)
    return headers


WEBHOOK_RETRY = RetryPolicy(
    attempts=1_000_000,
    first_delay_s=5.0,
    factor=2.0,
    max_delay_s=3600.0,
    jitter=0.2,
    window_s=26 * 3600.0,
    max_retry_after_s=3600.0,
)
"""5 s doubling to an hour between tries, for 26 hours; the window, not a count, ends it."""

UNDELIVERABLE = {404: "Not Found", 409: "Conflict", 410: "Gone"}
"""Answers that mean a per-job callback can never be delivered (n8n answers 409 once the
waiting execution has finished, 404 for one it does not know): retrying for a day helps
nobody, so the message ends early with the receiver's answer as the reason."""
UNDELIVERABLE_TRIES = 3
"""404 and 409 end a callback on its third answer, not its first (410 ends it at once):
n8n also answers 409 "is running already" to a callback that arrives while the execution
it resumes is still being saved as waiting, a few seconds at most. The retry policy's
first two delays (5 and 10 s) cover that."""


@dataclass(frozen=True)
class DeliveryLimits:
    """How much one receiver may cost the hub, and when a subscription is disabled.

    ``deadline_s`` bounds a whole post (connect, send, the answer's headers and the part
    of its body that is read), not each read, so a receiver that trickles its answer a
    byte at a time is cut off like one that never answers. Only ``max_response_bytes``
    of an answer are read. At most ``per_target`` posts go to one origin
    (scheme://host:port) at a time and ``concurrency`` in all, and the worker never waits
    for one post before starting another: a slow receiver holds its own slots only.
    """

    deadline_s: float = 15.0
    max_response_bytes: int = 64 * 1024
    per_target: int = 2
    concurrency: int = 64
    batch: int = 100
    disable_after_failures: int = 10
    disable_after_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.per_target < 1 or self.concurrency < self.per_target:
            raise ValueError("concurrency must be at least per_target, which is at least 1")


def target_of(url: str) -> str:
    """The origin a post goes to (``scheme://host:port`` as written), for per-target limits."""
    parts = url.split("/", 3)
    return "/".join(parts[:3]).lower()


@dataclass
class Subscription:
    """A receiver a client registered; ``secret`` is the plain signing secret."""

    id: str
    owner: str
    target_url: str
    events: list[str]
    scheme: SigningScheme
    secret: str = field(repr=False)
    active: bool
    fail_count: int
    failing_since: float | None
    last_error: str | None
    last_called_at: float | None
    disabled_reason: str | None
    created_at: float


@dataclass
class OutboxMessage:
    id: str
    dedupe_key: str
    subscription_id: str | None
    event: str
    target_url: str
    body: bytes
    headers: dict[str, str]
    scheme: SigningScheme
    status: MessageStatus
    attempts: int
    next_attempt_at: float
    deliver_until: float
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as reported to ``on_attempt`` (metrics, logs)."""

    message_id: str
    subscription_id: str | None
    event: str
    outcome: str
    """``delivered``, ``retry`` or ``failed`` (given up)."""
    status: int | None
    error: str | None
    duration_s: float


AttemptObserver = Callable[[Attempt], None]


@dataclass(frozen=True)
class _Answer:
    status: int
    head: bytes
    """The first bytes of the receiver's answer (for the reason a post failed)."""
    retry_after: float | None

    def excerpt(self) -> str:
        text = self.head.decode("utf-8", "replace")
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
        return f": {text[:160]}" if text else ""


class Outbox:
    """Persisted webhook messages and subscriptions on one store, and their worker.

    Plugins get one from :meth:`stemhub.PluginHub.outbox` (the hub's store, sealer, fetch
    policy and lease policy); ``lease_s`` and ``recovery_interval_s`` default to the
    hub's defaults (``STEMHUB_LEASE_S``, ``STEMHUB_RECOVERY_INTERVAL_S``).
    """

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        policy: FetchPolicy,
        *,
        retry: RetryPolicy = WEBHOOK_RETRY,
        limits: DeliveryLimits | None = None,
        lease_s: float = 10.0,
        recovery_interval_s: float = 2.0,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.time,
        on_attempt: AttemptObserver | None = None,
    ) -> None:
        if lease_s <= 0 or recovery_interval_s <= 0:
            raise ValueError("lease_s and recovery_interval_s must be positive")
        self._store = store
        self._sealer = sealer
        self.policy = policy
        self.retry = retry
        self.limits = limits or DeliveryLimits()
        self.lease_s = lease_s
        self.recovery_interval_s = recovery_interval_s
        self.resolver = resolver
        self.clock = clock
        self.on_attempt = on_attempt
        self.instance_id = uuid.uuid4().hex[:16]
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: dict[str, int] = {}
        self._held: set[str] = set()
        """Ids of the messages this worker leased and is posting: their leases are renewed."""

    @property
    def _engine(self) -> Any:
        return self._store.engine

    def check_target(self, url: str) -> None:
        """Refuse a target before storing it: scheme, credentials, literal private hosts.

        Host names are vetted again when a post connects (after DNS), so a name that
        resolves to a private address is refused then.
        """
        check_url(url, self.policy)

    # subscriptions

    async def subscribe(
        self,
        owner: str,
        target_url: str,
        events: Sequence[str],
        *,
        scheme: SigningScheme,
        secret: str | None = None,
    ) -> Subscription:
        self.check_target(target_url)
        sub_id = "hook_" + uuid.uuid4().hex[:24]
        plain = secret or new_secret()
        now = self.clock()
        row = {
            "id": sub_id,
            "owner": owner,
            "target_url": target_url,
            "events": json.dumps(list(events)),
            "scheme": scheme.value,
            "secret": self._sealer.seal(plain, purpose=f"outbox:{sub_id}"),
            "active": True,
            "fail_count": 0,
            "failing_since": None,
            "last_error": None,
            "last_called_at": None,
            "disabled_reason": None,
            "created_at": now,
        }
        async with self._engine.begin() as conn:
            await conn.execute(outbox_subscriptions.insert().values(**row))
        return self._subscription(row)

    def _subscription(self, row: Mapping[str, Any]) -> Subscription:
        return Subscription(
            id=row["id"],
            owner=row["owner"],
            target_url=row["target_url"],
            events=list(json.loads(row["events"])),
            scheme=SigningScheme(row["scheme"]),
            secret=self._sealer.open(row["secret"], purpose=f"outbox:{row['id']}"),
            active=bool(row["active"]),
            fail_count=int(row["fail_count"]),
            failing_since=row["failing_since"],
            last_error=row["last_error"],
            last_called_at=row["last_called_at"],
            disabled_reason=row["disabled_reason"],
            created_at=float(row["created_at"]),
        )

    async def subscriptions(
        self, owner: str | None = None, *, event: str | None = None, active_only: bool = False
    ) -> list[Subscription]:
        query = sa.select(outbox_subscriptions).order_by(outbox_subscriptions.c.created_at)
        if owner is not None:
            query = query.where(outbox_subscriptions.c.owner == owner)
        if active_only:
            query = query.where(outbox_subscriptions.c.active.is_(True))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        subs = [self._subscription(row) for row in rows]
        return [s for s in subs if event is None or event in s.events]

    async def subscription(self, sub_id: str, owner: str | None = None) -> Subscription | None:
        query = sa.select(outbox_subscriptions).where(outbox_subscriptions.c.id == sub_id)
        if owner is not None:
            query = query.where(outbox_subscriptions.c.owner == owner)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return self._subscription(row) if row is not None else None

    async def unsubscribe(self, sub_id: str, owner: str | None = None) -> bool:
        """Remove a subscription; its undelivered messages are dropped with it."""
        where = [outbox_subscriptions.c.id == sub_id]
        if owner is not None:
            where.append(outbox_subscriptions.c.owner == owner)
        async with self._engine.begin() as conn:
            removed = (await conn.execute(outbox_subscriptions.delete().where(*where))).rowcount
            if removed:
                await conn.execute(
                    outbox_messages.update()
                    .where(
                        outbox_messages.c.subscription_id == sub_id,
                        outbox_messages.c.status == MessageStatus.PENDING.value,
                    )
                    .values(status=MessageStatus.FAILED.value, last_error="unsubscribed")
                )
        return bool(removed)

    # messages

    async def enqueue(
        self,
        target_url: str,
        body: bytes,
        *,
        dedupe_id: str,
        event: str,
        headers: Mapping[str, str] | None = None,
        subscription_id: str | None = None,
        scheme: SigningScheme = SigningScheme.NONE,
        secret: str | None = None,
    ) -> tuple[str, bool]:
        """Queue one post; returns the message id and whether it is new.

        A ``dedupe_id`` seen before returns the first message's id and queues nothing.
        For a subscription's message the scheme and secret come from the subscription
        at send time; otherwise ``scheme`` and ``secret`` (sealed here) are used.
        """
        dedupe_key = (
            dedupe_id if len(dedupe_id) <= 255 else hashlib.sha256(dedupe_id.encode()).hexdigest()
        )
        existing = await self._id_for(dedupe_key)
        if existing is not None:
            return existing, False
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        now = self.clock()
        row = {
            "id": msg_id,
            "dedupe_key": dedupe_key,
            "subscription_id": subscription_id,
            "event": event,
            "target_url": target_url,
            "body": self._seal_body(msg_id, body),
            "headers": json.dumps(dict(headers or {})),
            "scheme": scheme.value,
            "secret": self._sealer.seal(secret, purpose=f"outbox:{msg_id}") if secret else None,
            "status": MessageStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "deliver_until": now + (self.retry.window_s or 0.0),
            "lease_owner": None,
            "lease_until": None,
            "last_status": None,
            "last_error": None,
            "created_at": now,
            "delivered_at": None,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(outbox_messages.insert().values(**row))
        except sa.exc.IntegrityError:
            existing = await self._id_for(dedupe_key)
            if existing is None:
                raise
            return existing, False
        self._wake.set()
        return msg_id, True

    async def _id_for(self, dedupe_key: str) -> str | None:
        query = sa.select(outbox_messages.c.id).where(outbox_messages.c.dedupe_key == dedupe_key)
        async with self._engine.connect() as conn:
            found: str | None = (await conn.execute(query)).scalar_one_or_none()
        return found

    def _seal_body(self, msg_id: str, body: bytes) -> bytes:
        """Bodies carry bearer links to stems: the store keeps them sealed, not in clear."""
        sealed = self._sealer.seal(base64.b64encode(body).decode(), purpose=f"outbox-body:{msg_id}")
        return _SEALED_BODY + sealed.encode()

    def _open_body(self, msg_id: str, stored: bytes) -> bytes:
        if not stored.startswith(_SEALED_BODY):
            return stored
        text = stored[len(_SEALED_BODY) :].decode()
        return base64.b64decode(self._sealer.open(text, purpose=f"outbox-body:{msg_id}"))

    def _message(self, row: Mapping[str, Any]) -> OutboxMessage:
        return OutboxMessage(
            id=row["id"],
            dedupe_key=row["dedupe_key"],
            subscription_id=row["subscription_id"],
            event=row["event"],
            target_url=row["target_url"],
            body=self._open_body(row["id"], bytes(row["body"])),
            headers=dict(json.loads(row["headers"])),
            scheme=SigningScheme(row["scheme"]),
            status=MessageStatus(row["status"]),
            attempts=int(row["attempts"]),
            next_attempt_at=float(row["next_attempt_at"]),
            deliver_until=float(row["deliver_until"]),
            last_status=row["last_status"],
            last_error=row["last_error"],
            created_at=float(row["created_at"]),
            delivered_at=row["delivered_at"],
        )

    async def message(self, msg_id: str) -> OutboxMessage | None:
        query = sa.select(outbox_messages).where(outbox_messages.c.id == msg_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return self._message(row) if row is not None else None

    async def messages(
        self, *, subscription_id: str | None = None, status: MessageStatus | None = None
    ) -> list[OutboxMessage]:
        query = sa.select(outbox_messages).order_by(outbox_messages.c.created_at)
        if subscription_id is not None:
            query = query.where(outbox_messages.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(outbox_messages.c.status == status.value)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [self._message(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        """Messages by status (for metrics)."""
        query = sa.select(outbox_messages.c.status, sa.func.count()).group_by(
            outbox_messages.c.status
        )
        async with self._engine.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    # the worker

    async def run(self, *, poll_s: float = 1.0) -> None:
        """Deliver due messages until cancelled; wakes when one is queued or a post ends.

        Each post is its own task: the worker claims what the per-target and total
        limits allow and goes back to claiming, so a slow receiver never holds up a
        message to anyone else. Cancelling the worker cancels the posts in flight; their
        leases run out and the next worker sends them again (at least once). Between
        passes it waits at most ``poll_s`` and never longer than ``recovery_interval_s``,
        so lapsed leases of a dead hub are found on the hub's schedule.
        """
        tasks: set[asyncio.Task[None]] = set()
        idle_s = min(poll_s, self.recovery_interval_s)
        self._stopping = False
        async with self._client() as client, self._renewing():
            try:
                while not self._stopping:
                    try:
                        claimed = await self._claim_due()
                    except (sa.exc.SQLAlchemyError, OSError):
                        log.exception("outbox pass failed; trying again shortly")
                        claimed = []
                    for message in claimed:
                        task = asyncio.create_task(self._deliver_claimed(client, message))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    if claimed:
                        continue
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                    # cancellation that lands as its timeout fires, and the worker never stops
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(idle_s):
                            await self._wake.wait()
                    self._wake.clear()
            finally:
                if not self._stopping:
                    for task in tasks:
                        task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Make :meth:`run` return after its current pass, never in the middle of a query.

        Posts in flight finish first (each within its deadline). Cancelling the worker
        works too, and cancels them: their leases run out and they go again.
        """
        self._stopping = True
        self._wake.set()

    def _client(self) -> httpx.AsyncClient:
        limits = self.limits
        return guarded_client(
            self.policy,
            resolver=self.resolver,
            timeout=httpx.Timeout(limits.deadline_s),
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=limits.concurrency),
        )

    async def deliver_due(self, client: httpx.AsyncClient | None = None) -> int:
        """Post every due message now (within the per-target limits) and wait for all.

        For tests and operators; :meth:`run` is the worker. Returns how many posts were
        made; a message is posted at most once per call.
        """
        async with contextlib.AsyncExitStack() as stack:
            if client is None:
                client = await stack.enter_async_context(self._client())
            await stack.enter_async_context(self._renewing())
            seen: set[str] = set()
            while claimed := await self._claim_due(exclude=seen):
                seen.update(m.id for m in claimed)
                await asyncio.gather(*(self._deliver_claimed(client, m) for m in claimed))
        return len(seen)

    async def _deliver_claimed(self, client: httpx.AsyncClient, message: OutboxMessage) -> None:
        try:
            await self._deliver(client, message)
        except (sa.exc.SQLAlchemyError, OSError):
            log.exception("recording webhook %s failed; its lease will expire", message.id)
        finally:
            self._held.discard(message.id)
            target = target_of(message.target_url)
            left = self._inflight.get(target, 1) - 1
            if left > 0:
                self._inflight[target] = left
            else:
                self._inflight.pop(target, None)
            self._wake.set()

    async def _claim_due(self, *, exclude: set[str] | None = None) -> list[OutboxMessage]:
        """Lease due messages whose target has a free slot; the slots are taken here."""
        limits = self.limits
        room = limits.concurrency - sum(self._inflight.values())
        if room <= 0:
            return []
        now = self.clock()
        c = outbox_messages.c
        free = sa.or_(c.lease_until.is_(None), c.lease_until < now)
        where = [c.status == MessageStatus.PENDING.value, c.next_attempt_at <= now, free]
        busy = [t for t, n in self._inflight.items() if n >= limits.per_target]
        where += [sa.not_(c.target_url.startswith(t, autoescape=True)) for t in busy]
        if exclude:
            where.append(c.id.notin_(exclude))
        query = (
            sa.select(outbox_messages).where(*where).order_by(c.next_attempt_at).limit(limits.batch)
        )
        claimed: list[OutboxMessage] = []
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
            for row in rows:
                if len(claimed) >= room:
                    break
                target = target_of(row["target_url"])
                if self._inflight.get(target, 0) >= limits.per_target:
                    continue
                taken = await conn.execute(
                    outbox_messages.update()
                    .where(c.id == row["id"], c.status == MessageStatus.PENDING.value, free)
                    .values(lease_owner=self.instance_id, lease_until=now + self.lease_s)
                )
                if taken.rowcount == 1:
                    self._inflight[target] = self._inflight.get(target, 0) + 1
                    claimed.append(self._message(row))
        self._held.update(message.id for message in claimed)
        return claimed

    @contextlib.asynccontextmanager
    async def _renewing(self) -> AsyncIterator[None]:
        """Renew the leases of the posts in flight every third of ``lease_s`` meanwhile."""
        renewer = asyncio.create_task(self._renew_leases_forever())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew_leases_forever(self) -> None:
        c = outbox_messages.c
        while True:
            await asyncio.sleep(self.lease_s / 3)
            held = list(self._held)
            if not held:
                continue
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        outbox_messages.update()
                        .where(c.id.in_(held), c.lease_owner == self.instance_id)
                        .values(lease_until=self.clock() + self.lease_s)
                    )
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.warning("webhook leases not renewed (%s); another hub may send them", exc)

    async def _signing_for(
        self, message: OutboxMessage
    ) -> tuple[SigningScheme, str | None, Subscription | None]:
        if message.subscription_id is None:
            query = sa.select(outbox_messages.c.secret).where(outbox_messages.c.id == message.id)
            async with self._engine.connect() as conn:
                sealed = (await conn.execute(query)).scalar_one_or_none()
            secret = self._sealer.open(sealed, purpose=f"outbox:{message.id}") if sealed else None
            return message.scheme, secret, None
        sub = await self.subscription(message.subscription_id)
        if sub is None:
            return message.scheme, None, None
        return sub.scheme, sub.secret, sub

    async def _post(
        self, client: httpx.AsyncClient, message: OutboxMessage, headers: dict[str, str]
    ) -> _Answer:
        """One post under the total deadline, reading at most ``max_response_bytes`` back."""
        limits = self.limits
        async with asyncio.timeout(limits.deadline_s):
            request = client.build_request(
                "POST", message.target_url, content=message.body, headers=headers
            )
            response = await client.send(request, stream=True)
            try:
                head = bytearray()
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= limits.max_response_bytes:
                        break
            finally:
                await response.aclose()
        retry_after = _retry_after(response.headers.get("retry-after"))
        return _Answer(response.status_code, bytes(head[:200]), retry_after)

    async def _deliver(self, client: httpx.AsyncClient, message: OutboxMessage) -> None:
        scheme, secret, sub = await self._signing_for(message)
        if message.subscription_id is not None and (sub is None or not sub.active):
            why = "the subscription was removed" if sub is None else "the subscription is disabled"
            await self._finish(message, MessageStatus.FAILED, None, why)
            return
        started = time.monotonic()
        headers = {"Content-Type": "application/json", **message.headers}
        headers.update(
            signature_headers(scheme, secret, message.id, message.event, message.body, self.clock())
        )
        answer: _Answer | None = None
        error: str | None = None
        forbidden = False
        try:
            answer = await self._post(client, message, headers)
            if not 200 <= answer.status < 300:
                error = f"HTTP {answer.status}" + answer.excerpt()
        except StemhubError as exc:
            error = exc.message
            forbidden = exc.code in (ErrorCode.SOURCE_FORBIDDEN, ErrorCode.UNSUPPORTED_SOURCE)
        except TimeoutError:
            error = (
                f"no complete answer from {redact_url(message.target_url)} "
                f"within {self.limits.deadline_s:g} s"
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__} posting to {redact_url(message.target_url)}"
        elapsed = time.monotonic() - started
        status = answer.status if answer is not None else None
        if error is None:
            await self._finish(message, MessageStatus.DELIVERED, status, None)
            await self._subscription_ok(sub)
            self._report(message, "delivered", status, None, elapsed)
            return
        attempts = message.attempts + 1
        retry_after = answer.retry_after if answer is not None else None
        next_at = self.clock() + self.retry.delay(attempts, retry_after)
        final = self._final_reason(message, sub, status, forbidden, error, next_at, attempts)
        if final is not None:
            await self._finish(message, MessageStatus.FAILED, status, final, attempts=attempts)
            if sub is not None:
                await self._disable(sub, final, error)
            self._report(message, "failed", status, final, elapsed)
            return
        await self._reschedule(message, attempts, next_at, status, error)
        if sub is not None:
            await self._subscription_failed(sub, error)
        self._report(message, "retry", status, error, elapsed)

    def _final_reason(
        self,
        message: OutboxMessage,
        sub: Subscription | None,
        status: int | None,
        forbidden: bool,
        error: str,
        next_at: float,
        attempts: int,
    ) -> str | None:
        """Why this failure ends the message (``None``: try again later)."""
        if status == 410:
            return f"the receiver answered 410 Gone, so it is not sent again ({error})"
        if sub is None and status in UNDELIVERABLE and attempts >= UNDELIVERABLE_TRIES:
            return (
                f"the receiver answered {status} {UNDELIVERABLE[status]}: it will never "
                f"accept this callback, so it is not sent again ({error})"
            )
        if forbidden:
            return f"the target address is refused: {error}"
        if next_at > message.deliver_until:
            hours = (self.retry.window_s or 0.0) / 3600
            return f"no delivery succeeded within {hours:g} hours (last: {error})"
        return None

    def _report(
        self, message: OutboxMessage, outcome: str, status: int | None, error: str | None, s: float
    ) -> None:
        if outcome != "delivered":
            log.log(
                logging.WARNING if outcome == "failed" else logging.INFO,
                "webhook %s to %s: %s (%s)",
                message.id,
                redact_url(message.target_url),
                outcome,
                error,
            )
        if self.on_attempt is not None:
            attempt = Attempt(
                message.id, message.subscription_id, message.event, outcome, status, error, s
            )
            self.on_attempt(attempt)

    async def _finish(
        self,
        message: OutboxMessage,
        status: MessageStatus,
        http_status: int | None,
        error: str | None,
        *,
        attempts: int | None = None,
    ) -> None:
        now = self.clock()
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": attempts if attempts is not None else message.attempts + 1,
            "lease_owner": None,
            "lease_until": None,
            "last_status": http_status,
            "last_error": error,
        }
        if status is MessageStatus.DELIVERED:
            values["delivered_at"] = now
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_messages.update().where(outbox_messages.c.id == message.id).values(**values)
            )

    async def _reschedule(
        self, message: OutboxMessage, attempts: int, next_at: float, status: int | None, error: str
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_messages.update()
                .where(outbox_messages.c.id == message.id)
                .values(
                    attempts=attempts,
                    next_attempt_at=next_at,
                    lease_owner=None,
                    lease_until=None,
                    last_status=status,
                    last_error=error,
                )
            )

    async def _subscription_ok(self, sub: Subscription | None) -> None:
        if sub is None:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_subscriptions.update()
                .where(outbox_subscriptions.c.id == sub.id)
                .values(fail_count=0, failing_since=None, last_called_at=self.clock())
            )

    async def _subscription_failed(self, sub: Subscription, error: str) -> None:
        now = self.clock()
        c = outbox_subscriptions.c
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_subscriptions.update()
                .where(c.id == sub.id)
                .values(
                    fail_count=c.fail_count + 1,
                    failing_since=sa.func.coalesce(c.failing_since, now),
                    last_error=error,
                    last_called_at=now,
                )
            )
            row = (
                await conn.execute(sa.select(c.fail_count, c.failing_since).where(c.id == sub.id))
            ).first()
        if row is None:
            return
        fail_count, failing_since = int(row[0]), float(row[1] or now)
        limits = self.limits
        if fail_count >= limits.disable_after_failures and now - failing_since >= (
            limits.disable_after_s
        ):
            await self._disable(
                sub, f"{fail_count} deliveries in a row failed (last: {error})", error
            )

    async def _disable(self, sub: Subscription, reason: str, error: str | None) -> None:
        log.warning("disabling webhook subscription %s: %s", sub.id, reason)
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_subscriptions.update()
                .where(outbox_subscriptions.c.id == sub.id)
                .values(
                    active=False,
                    disabled_reason=reason,
                    last_error=error,
                    last_called_at=self.clock(),
                )
            )
            await conn.execute(
                outbox_messages.update()
                .where(
                    outbox_messages.c.subscription_id == sub.id,
                    outbox_messages.c.status == MessageStatus.PENDING.value,
                )
                .values(status=MessageStatus.FAILED.value, last_error=f"not sent: {reason}")
            )

    async def reactivate(self, sub_id: str, owner: str | None = None) -> bool:
        """Turn a disabled subscription back on (the receiver was fixed)."""
        where = [outbox_subscriptions.c.id == sub_id]
        if owner is not None:
            where.append(outbox_subscriptions.c.owner == owner)
        async with self._engine.begin() as conn:
            done = await conn.execute(
                outbox_subscriptions.update()
                .where(*where)
                .values(active=True, disabled_reason=None, fail_count=0, failing_since=None)
            )
        return bool(done.rowcount)


__all__ = [
    "UNDELIVERABLE",
    "UNDELIVERABLE_TRIES",
    "WEBHOOK_RETRY",
    "Attempt",
    "DeliveryLimits",
    "MessageStatus",
    "Outbox",
    "OutboxMessage",
    "SigningScheme",
    "Subscription",
    "new_secret",
    "outbox_messages",
    "outbox_subscriptions",
    "signature_headers",
    "standard_signature",
    "target_of",
]
