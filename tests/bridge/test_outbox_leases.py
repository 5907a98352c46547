"""The outbox leases what it posts on the hub's lease policy, like the hub leases jobs.

A message a dead hub was posting goes out from another hub once ``STEMHUB_LEASE_S`` has
passed, found on the ``STEMHUB_RECOVERY_INTERVAL_S`` schedule; a live hub renews the
lease of a post that outlasts it, so no other hub sends it meanwhile. Lease times run on
a clock the test moves; the waits are on conditions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from stemhub._store import Store
from stemhub.outbox import MessageStatus, Outbox, outbox_messages
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, patience
from tests.bridge.conftest import Receiver
from tests.bridge.test_outbox import Clock
from tests.bridge.test_outbox_limits import RawReceiver, outbox_for, raw_receiver


class WatchedClock(Clock):
    """The test's clock, which also says when a worker last read it (a pass began)."""

    def __init__(self) -> None:
        super().__init__()
        self.read = asyncio.Event()

    def __call__(self) -> float:
        self.read.set()
        return self.now


async def test_a_message_a_dead_hub_held_is_sent_by_another_on_the_hubs_lease_policy(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = make_settings(
        tmp_path / "hub", allowed_hosts=["127.0.0.1"], lease_s=4, recovery_interval_s=0.05
    )
    clock = WatchedClock()
    controls = FakeBackendControls()
    async with (
        open_test_hub(settings, controls, recover=False) as dead,
        open_test_hub(settings, controls, recover=False) as alive,
    ):
        crashed = dead.outbox()
        crashed.clock = clock
        msg_id, _ = await crashed.enqueue(
            receiver.url + "/hook/dead", b"{}", dedupe_id="dead", event="job.completed"
        )
        assert [m.id for m in await crashed._claim_due()] == [msg_id], "claimed, then it died"
        taker = alive.outbox()
        taker.clock = clock
        assert taker.recovery_interval_s == settings.recovery_interval_s
        clock.now += settings.lease_s - 0.5
        assert await taker.deliver_due() == 0, "the dead hub's lease has not run out yet"
        # a worker that polls only hourly: the hub's recovery interval must wake it
        worker = asyncio.create_task(taker.run(poll_s=3600))
        try:
            clock.read.clear()
            async with asyncio.timeout(patience(5)):
                await clock.read.wait()
            clock.now += 1.0
            await receiver.wait_for(1, within_s=patience(5))
            await _delivered(taker, msg_id)
        finally:
            taker.stop()  # between passes: cancelling could land mid-query
            await worker
    assert len(receiver.posts) == 1


async def _delivered(outbox: Outbox, msg_id: str) -> None:
    """Wait until the message is recorded as delivered."""
    async with asyncio.timeout(patience(5)):
        while True:
            message = await outbox.message(msg_id)
            if message is not None and message.status is MessageStatus.DELIVERED:
                return
            await asyncio.sleep(0.02)


async def _lease_until(store: Store, msg_id: str) -> float:
    query = sa.select(outbox_messages.c.lease_until).where(outbox_messages.c.id == msg_id)
    async with store.engine.connect() as conn:
        return float((await conn.execute(query)).scalar_one())


async def test_a_post_that_outlasts_the_lease_keeps_it_and_goes_out_once(store: Store) -> None:
    release = asyncio.Event()

    async def slow(_state: RawReceiver, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    clock = Clock()
    posting = outbox_for(store, clock, deadline_s=3600, lease_s=0.3)
    other = outbox_for(store, clock, deadline_s=3600, lease_s=0.3)
    async with raw_receiver(slow) as server:
        msg_id, _ = await posting.enqueue(server.url, b"{}", dedupe_id="s", event="job.completed")
        worker = asyncio.create_task(posting.run(poll_s=0.05))
        try:
            async with asyncio.timeout(patience(5)):
                await server.got_request.wait()
            first = await _lease_until(store, msg_id)
            clock.now += 0.2
            async with asyncio.timeout(patience(5)):
                while True:
                    if await _lease_until(store, msg_id) > first:
                        break
                    await asyncio.sleep(0.02)
            clock.now += 0.2
            assert clock.now > first, "without the renewal the lease would have run out"
            assert await other.deliver_due() == 0
            release.set()
            await _delivered(posting, msg_id)
        finally:
            release.set()
            posting.stop()
            await worker
    assert server.requests == 1
