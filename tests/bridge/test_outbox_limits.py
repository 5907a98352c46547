"""What one receiver may cost the outbox: its own slots, a deadline, a few bytes read back.

The receivers here are raw asyncio servers on loopback, so a test controls exactly when
each byte of an answer leaves (a framework would buffer or finish the answer itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from stemhub._sealing import Sealer
from stemhub._store import Store
from stemhub.outbox import (
    UNDELIVERABLE_TRIES,
    DeliveryLimits,
    MessageStatus,
    Outbox,
    SigningScheme,
)
from stemhub.testing import patience
from tests.bridge.conftest import Receiver
from tests.bridge.test_outbox import LOOPBACK, Clock
from tests.fakes.raw_http import read_request

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawReceiver:
    url: str
    requests: int = 0
    got_request: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0


@contextlib.asynccontextmanager
async def raw_receiver(
    answer: Callable[[RawReceiver, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[RawReceiver]:
    """A loopback HTTP/1.1 server that reads one request per connection, then runs ``answer``."""
    state = RawReceiver(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            state.requests += 1
            state.got_request.set()
            await answer(state, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            state.done.set()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/hook"
    async with server:
        yield state
        server.close()


def outbox_for(
    store: Store,
    clock: Callable[[], float] = time.time,
    *,
    lease_s: float = 60.0,
    **limits: float,
) -> Outbox:
    chosen = DeliveryLimits(**limits)  # type: ignore[arg-type]
    return Outbox(store, Sealer(b"test-key"), LOOPBACK, limits=chosen, lease_s=lease_s, clock=clock)


async def test_a_receiver_that_trickles_its_answer_delays_no_other_receiver(
    store: Store, receiver: Receiver
) -> None:
    release = asyncio.Event()

    async def trickle(_state: RawReceiver, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not release.is_set():
            writer.write(b".")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), 0.05)

    outbox = outbox_for(store, deadline_s=60, lease_s=120)
    async with raw_receiver(trickle) as slow:
        worker = asyncio.create_task(outbox.run(poll_s=0.05))
        try:
            await outbox.enqueue(slow.url, b"{}", dedupe_id="slow", event="job.completed")
            async with asyncio.timeout(patience(10)):
                await slow.got_request.wait()
            fast_id, _ = await outbox.enqueue(
                receiver.url + "/hook/fast", b'{"k":2}', dedupe_id="fast", event="job.completed"
            )
            (post,) = await receiver.wait_for(1, within_s=patience(10))
            assert post.body == b'{"k":2}' and not slow.done.is_set()
            fast = await outbox.message(fast_id)
            assert fast is not None
            async with asyncio.timeout(patience(10)):
                while fast.status is not MessageStatus.DELIVERED:
                    await asyncio.sleep(0.01)
                    fast = await outbox.message(fast_id) or fast
        finally:
            release.set()
            outbox.stop()
            await worker


async def test_a_post_has_one_deadline_for_the_whole_answer(store: Store) -> None:
    async def endless(_state: RawReceiver, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while True:
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.05)

    clock = Clock()
    outbox = outbox_for(store, clock, deadline_s=0.5, lease_s=5)
    async with raw_receiver(endless) as slow:
        msg_id, _ = await outbox.enqueue(slow.url, b"{}", dedupe_id="t", event="job.failed")
        async with asyncio.timeout(patience(30)):
            await outbox.deliver_due()
    message = await outbox.message(msg_id)
    assert message is not None and message.status is MessageStatus.PENDING
    assert message.attempts == 1 and "within 0.5 s" in (message.last_error or "")


async def test_only_the_head_of_a_huge_answer_is_read(store: Store) -> None:
    total = 256 * 1024 * 1024
    chunk = b"x" * 65536

    async def huge(state: RawReceiver, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        while state.sent < total:
            writer.write(chunk)
            await writer.drain()
            state.sent += len(chunk)

    outbox = outbox_for(store, max_response_bytes=4096)
    async with raw_receiver(huge) as big:
        msg_id, _ = await outbox.enqueue(big.url, b"{}", dedupe_id="b", event="job.completed")
        async with asyncio.timeout(patience(60)):
            await outbox.deliver_due()
            await big.done.wait()
    message = await outbox.message(msg_id)
    assert message is not None and message.status is MessageStatus.DELIVERED
    assert big.sent < total // 4, "the hub stopped reading and closed the connection"


async def test_a_callback_the_receiver_can_never_take_ends_after_a_few_tries(
    store: Store, receiver: Receiver
) -> None:
    clock = Clock()
    outbox = outbox_for(store, clock)
    receiver.statuses = [409] * (UNDELIVERABLE_TRIES + 5)
    callback, _ = await outbox.enqueue(
        receiver.url + "/hook/cb", b"{}", dedupe_id="cb", event="job.completed"
    )
    sub = await outbox.subscribe(
        "k", receiver.url + "/hook/sub", ["job.completed"], scheme=SigningScheme.STANDARD
    )
    subscribed, _ = await outbox.enqueue(
        sub.target_url, b"{}", dedupe_id="s", event="job.completed", subscription_id=sub.id
    )
    for _ in range(UNDELIVERABLE_TRIES):
        await outbox.deliver_due()
        clock.now += 3600
    ended = await outbox.message(callback)
    assert ended is not None and ended.status is MessageStatus.FAILED
    assert ended.attempts == UNDELIVERABLE_TRIES, "ended on its last try, not before or after"
    assert "409 Conflict" in (ended.last_error or "") and "never" in (ended.last_error or "")
    kept = await outbox.message(subscribed)
    assert kept is not None and kept.status is MessageStatus.PENDING, "a hook is retried"


async def test_a_callback_refused_while_its_execution_is_saved_as_waiting_lands_later(
    store: Store, receiver: Receiver
) -> None:
    """n8n answers 409 "is running already" until the execution it resumes is saved."""
    clock = Clock()
    outbox = outbox_for(store, clock)
    receiver.statuses = [409]
    callback, _ = await outbox.enqueue(
        receiver.url + "/hook/cb", b"{}", dedupe_id="cb", event="job.completed"
    )
    await outbox.deliver_due()
    waiting = await outbox.message(callback)
    assert waiting is not None and waiting.status is MessageStatus.PENDING
    clock.now = waiting.next_attempt_at
    await outbox.deliver_due()
    landed = await outbox.message(callback)
    assert landed is not None and landed.status is MessageStatus.DELIVERED


async def test_a_receivers_retry_after_sets_the_next_try(store: Store) -> None:
    async def busy(_state: RawReceiver, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    clock = Clock()
    outbox = outbox_for(store, clock)
    async with raw_receiver(busy) as server:
        msg_id, _ = await outbox.enqueue(server.url, b"{}", dedupe_id="r", event="job.completed")
        await outbox.deliver_due()
    message = await outbox.message(msg_id)
    assert message is not None and message.next_attempt_at == clock.now + 120
    assert message.last_error is not None and message.last_error.startswith("HTTP 429")
