"""The persisted webhook outbox on real SQLite with a real receiver on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import sqlalchemy as sa
import standardwebhooks
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from stemhub._sealing import Sealer
from stemhub._store import Store, metadata
from stemhub.fetch import FetchPolicy
from stemhub.migrations import downgrade, upgrade
from stemhub.outbox import (
    WEBHOOK_RETRY,
    DeliveryLimits,
    MessageStatus,
    Outbox,
    SigningScheme,
    outbox_messages,
    outbox_subscriptions,
)
from stemhub.rate_windows import RateCounter, hit, rate_windows
from stemhub.stemsplit_wire import verify_signature
from tests.bridge.conftest import Receiver

LOOPBACK = FetchPolicy(max_bytes=1, allowed_hosts=frozenset({"127.0.0.1"}))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_outbox(store: Store, clock: Clock, *, lease_s: float = 60.0, **limits: float) -> Outbox:
    chosen = DeliveryLimits(**limits)  # type: ignore[arg-type]
    return Outbox(store, Sealer(b"test-key"), LOOPBACK, limits=chosen, lease_s=lease_s, clock=clock)


async def test_delivers_signed_and_retries_with_the_same_id(
    store: Store, receiver: Receiver
) -> None:
    clock = Clock()
    outbox = make_outbox(store, clock)
    sub = await outbox.subscribe(
        "key1", receiver.url + "/hook/a", ["job.completed"], scheme=SigningScheme.STANDARD
    )
    receiver.statuses = [500, 503]
    msg_id, new = await outbox.enqueue(
        sub.target_url,
        b'{"n":1}',
        dedupe_id="job1:done",
        event="job.completed",
        subscription_id=sub.id,
    )
    assert new
    assert await outbox.deliver_due() == 1
    assert await outbox.deliver_due() == 0, "not due before its backoff"
    first = await outbox.message(msg_id)
    assert first is not None and first.attempts == 1 and first.last_error == "HTTP 500"
    clock.now = first.next_attempt_at
    await outbox.deliver_due()
    second = await outbox.message(msg_id)
    assert second is not None
    assert second.next_attempt_at - clock.now > first.next_attempt_at - 1_800_000_000.0
    clock.now = second.next_attempt_at
    await outbox.deliver_due()
    done = await outbox.message(msg_id)
    assert done is not None and done.status is MessageStatus.DELIVERED and done.attempts == 3
    ids = {post.headers["webhook-id"] for post in receiver.posts}
    assert ids == {msg_id}
    last = receiver.posts[-1]
    verified = standardwebhooks.Webhook(sub.secret)
    stamp = int(last.headers["webhook-timestamp"])
    assert stamp == int(clock.now)
    assert standard_ok(verified, last.body, last.headers, stamp)
    healthy = await outbox.subscription(sub.id)
    assert healthy is not None and healthy.fail_count == 0 and healthy.active


def standard_ok(
    hook: standardwebhooks.Webhook, body: bytes, headers: dict[str, str], stamp: int
) -> bool:
    from datetime import UTC, datetime

    expected = hook.sign(headers["webhook-id"], datetime.fromtimestamp(stamp, UTC), body.decode())
    return expected == headers["webhook-signature"]


async def test_a_second_enqueue_of_the_same_event_is_a_no_op(
    store: Store, receiver: Receiver
) -> None:
    outbox = make_outbox(store, Clock())
    first = await outbox.enqueue(
        receiver.url + "/hook/x",
        b"{}",
        dedupe_id="job9:completed",
        event="job.completed",
        scheme=SigningScheme.STEMSPLIT,
        secret="whsec_abc",
    )
    again = await outbox.enqueue(
        receiver.url + "/hook/x",
        b"{}",
        dedupe_id="job9:completed",
        event="job.completed",
        scheme=SigningScheme.STEMSPLIT,
        secret="whsec_abc",
    )
    assert again == (first[0], False)
    await outbox.deliver_due()
    (post,) = receiver.posts
    assert verify_signature(post.body, post.headers["x-webhook-signature"], "whsec_abc")
    assert post.headers["x-webhook-id"] == first[0]


async def test_queued_messages_survive_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    before = await Store.open(url)
    outbox = make_outbox(before, Clock())
    msg_id, _ = await outbox.enqueue(
        receiver.url + "/hook/r", b'{"a":1}', dedupe_id="d1", event="job.failed"
    )
    async with before.engine.connect() as raw:
        stored = (await raw.execute(sa.select(outbox_messages.c.body))).scalar_one()
    assert b'"a"' not in stored and stored.startswith(b"sealed-body:"), "bodies carry links"
    await before.close()

    after = await Store.open(url)
    try:
        restarted = make_outbox(after, Clock())
        assert await restarted.deliver_due() == 1
        done = await restarted.message(msg_id)
        assert done is not None and done.status is MessageStatus.DELIVERED
    finally:
        await after.close()
    assert [p.body for p in receiver.posts] == [b'{"a":1}']


async def test_a_message_held_by_a_dead_worker_is_sent_again(
    store: Store, receiver: Receiver
) -> None:
    clock = Clock()
    crashed = make_outbox(store, clock, lease_s=30, deadline_s=5)
    msg_id, _ = await crashed.enqueue(receiver.url + "/hook/l", b"{}", dedupe_id="l", event="e")
    assert [m.id for m in await crashed._claim_due()] == [msg_id]
    other = make_outbox(store, clock, lease_s=30, deadline_s=5)
    assert await other.deliver_due() == 0
    clock.now += 31
    assert await other.deliver_due() == 1
    assert len(receiver.posts) == 1


async def test_retries_go_on_for_a_day_then_the_subscription_is_disabled(
    store: Store, receiver: Receiver
) -> None:
    clock = Clock()
    outbox = make_outbox(store, clock, disable_after_failures=10_000)
    sub = await outbox.subscribe(
        "k", receiver.url + "/hook/down", ["job.failed"], scheme=SigningScheme.STEMSPLIT
    )
    receiver.statuses = [502] * 1000
    msg_id, _ = await outbox.enqueue(
        sub.target_url, b"{}", dedupe_id="x", event="job.failed", subscription_id=sub.id
    )
    start = clock.now
    while True:
        await outbox.deliver_due()
        message = await outbox.message(msg_id)
        assert message is not None
        if message.status is not MessageStatus.PENDING:
            break
        clock.now = message.next_attempt_at
    assert message.status is MessageStatus.FAILED
    assert clock.now - start >= 24 * 3600
    assert 15 <= message.attempts <= 60
    disabled = await outbox.subscription(sub.id)
    assert disabled is not None and not disabled.active
    assert disabled.disabled_reason is not None and "26 hours" in disabled.disabled_reason
    assert disabled.last_error == "HTTP 502"


async def test_repeated_failures_disable_and_drop_the_backlog(
    store: Store, receiver: Receiver
) -> None:
    clock = Clock()
    outbox = make_outbox(store, clock, disable_after_failures=3, disable_after_s=0)
    sub = await outbox.subscribe(
        "k", receiver.url + "/hook/flaky", ["job.completed"], scheme=SigningScheme.STANDARD
    )
    receiver.statuses = [500] * 10
    for n in range(4):
        await outbox.enqueue(
            sub.target_url,
            b"{}",
            dedupe_id=f"m{n}",
            event="job.completed",
            subscription_id=sub.id,
        )
    await outbox.deliver_due()
    disabled = await outbox.subscription(sub.id)
    assert disabled is not None and not disabled.active
    assert "in a row failed" in (disabled.disabled_reason or "")
    statuses = {m.status for m in await outbox.messages(subscription_id=sub.id)}
    assert statuses == {MessageStatus.FAILED}
    assert await outbox.reactivate(sub.id)
    back = await outbox.subscription(sub.id)
    assert back is not None and back.active and back.disabled_reason is None


def test_backoff_grows_exponentially_to_an_hour() -> None:
    policy = WEBHOOK_RETRY.with_(jitter=0.0)
    delays = [policy.delay(n) for n in range(1, 16)]
    assert delays[:4] == [5.0, 10.0, 20.0, 40.0]
    assert delays[-1] == 3600.0
    assert all(b >= a for a, b in itertools.pairwise(delays))


async def test_secrets_are_sealed_in_the_store(store: Store, receiver: Receiver) -> None:
    outbox = make_outbox(store, Clock())
    sub = await outbox.subscribe(
        "k", receiver.url + "/hook/s", ["job.completed"], scheme=SigningScheme.STANDARD
    )
    await outbox.enqueue(
        receiver.url + "/hook/c",
        b"{}",
        dedupe_id="c",
        event="e",
        scheme=SigningScheme.STANDARD,
        secret="whsec_c2VjcmV0",
    )
    async with store.engine.connect() as conn:
        sub_rows = (await conn.execute(sa.select(outbox_subscriptions.c.secret))).scalars().all()
        msg_rows = (await conn.execute(sa.select(outbox_messages.c.secret))).scalars().all()
    assert sub.secret not in json.dumps(list(sub_rows))
    assert all(value.startswith("sealed:v1:") for value in [*sub_rows, *msg_rows])


async def test_rate_windows_count_across_calls_and_reset(store: Store) -> None:
    first = await hit(store, "k", limit=2, window_s=60, now=120.0)
    second = await hit(store, "k", limit=2, window_s=60, now=130.0)
    third = await hit(store, "k", limit=2, window_s=60, now=170.0)
    assert (first.remaining, second.remaining, third.exceeded) == (1, 0, True)
    assert third.retry_after(170.0) == 10
    fresh = await hit(store, "k", limit=2, window_s=60, now=185.0)
    assert fresh.used == 1 and not fresh.exceeded
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(rate_windows.c.window))).scalars().all()
    assert rows == [3], "the older window was pruned"


async def test_migration_matches_the_tables_and_downgrades(store: Store) -> None:
    mine = {"outbox_messages", "outbox_subscriptions", "rate_windows"}

    def diff(conn: sa.Connection) -> list[object]:
        context = MigrationContext.configure(conn)
        return [d for d in compare_metadata(context, metadata) if _touches(d, mine)]

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    async with store.engine.begin() as conn:
        await conn.run_sync(downgrade, "0001")
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert not names & mine
        await conn.run_sync(upgrade)
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert mine <= names


def _touches(entry: object, tables: set[str]) -> bool:
    text = repr(entry)
    return any(f"'{name}'" in text for name in tables)


async def test_rate_counters_of_two_hubs_refuse_past_the_limit_together(store: Store) -> None:
    first, second = RateCounter(store, flush_s=3600), RateCounter(store, flush_s=3600)
    seen = []
    for n in range(12):
        counter = first if n % 2 else second
        seen.append(await counter.hit("k", limit=6, window_s=60, now=125.0))
    allowed = [w for w in seen if not w.exceeded]
    assert len(allowed) <= 8, "at most what each hub counts below half the limit goes over"
    assert seen[-1].exceeded and seen[-2].exceeded
    await first.flush()
    await second.flush()
    stored = await hit(store, "k", limit=6, window_s=60, now=126.0)
    assert stored.used == 13, "every request was counted in the store"


async def test_rate_counter_writes_in_batches_below_half_the_limit(store: Store) -> None:
    counter = RateCounter(store, flush_s=3600)
    for _ in range(40):
        window = await counter.hit("busy", limit=100, window_s=60, now=125.0)
    assert window.used == 40 and not window.exceeded
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(rate_windows.c.count))).scalars().all()
    assert rows == [], "nothing written yet: below half the limit, between flushes"
    await counter.flush()
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(rate_windows.c.count))).scalars().all()
    assert rows == [40]


async def test_counts_on_their_way_to_the_store_still_count(store: Store) -> None:
    counter = RateCounter(store, flush_s=0)
    seen = []
    for _ in range(20):
        seen.append((await counter.hit("k", limit=1000, window_s=60, now=125.0)).used)
        await asyncio.sleep(0)
    assert seen == list(range(1, 21))
    await counter.close()  # nothing is left writing when the store closes
    assert (await hit(store, "k", limit=1000, window_s=60, now=125.0)).used == 21
