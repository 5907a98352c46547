"""The shared pacer: never over the key's limit, pauses for everyone, finishing first."""

from __future__ import annotations

import asyncio

from stemhub.backends.stemsplit.pacing import (
    PRIORITY_FINISH,
    PRIORITY_START,
    RequestPacer,
    ScaledClock,
)
from stemhub.stemsplit_wire import RateLimitInfo
from stemhub.testing import patience


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_concurrent_requests_never_exceed_the_limit_in_any_window() -> None:
    clock = ScaledClock(0.001)
    pacer = RequestPacer(60, 60.0, clock=clock)
    granted: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        granted.append(clock.monotonic())

    await asyncio.gather(*(one() for _ in range(150)))
    assert len(granted) == 150
    assert _max_in_window(granted, 60.0) <= 60
    assert pacer.stats.peak_in_window == _max_in_window(granted, 60.0)
    await pacer.close()


async def test_a_pause_holds_every_waiter_until_it_ends() -> None:
    clock = ScaledClock(0.001)
    pacer = RequestPacer(600, 60.0, clock=clock)
    pacer.pause(30.0)
    paused_at = clock.monotonic()
    granted: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        granted.append(clock.monotonic() - paused_at)

    await asyncio.gather(*(one() for _ in range(5)))
    assert min(granted) >= 30.0
    assert pacer.stats.pauses == 1
    await pacer.close()


class HeldClock(ScaledClock):
    """A scaled clock that stands still until :meth:`release`: no token refills while a
    test queues its waiters, however long a loaded machine takes between two lines."""

    def __init__(self, factor: float) -> None:
        super().__init__(factor)
        self.held: float | None = super().monotonic()

    def monotonic(self) -> float:
        return self.held if self.held is not None else super().monotonic()

    def release(self) -> None:
        self.held = None


async def test_requests_that_finish_jobs_go_before_requests_that_start_them() -> None:
    clock = HeldClock(0.001)
    pacer = RequestPacer(60, 60.0, burst=1, clock=clock)
    await pacer.acquire()  # the bucket is now empty: everyone below queues
    order: list[str] = []

    async def one(name: str, priority: int) -> None:
        await pacer.acquire(priority)
        order.append(name)

    starts = [asyncio.create_task(one(f"start{i}", PRIORITY_START)) for i in range(3)]
    await asyncio.sleep(0)
    finishes = [asyncio.create_task(one(f"finish{i}", PRIORITY_FINISH)) for i in range(2)]
    await asyncio.sleep(0)
    assert order == [], "nobody is served while the clock stands still"
    clock.release()
    await asyncio.gather(*starts, *finishes)
    assert order == ["finish0", "finish1", "start0", "start1", "start2"]
    await pacer.close()


async def test_server_headers_shrink_the_budget_and_reset_is_honoured() -> None:
    clock = ScaledClock(0.001)
    pacer = RequestPacer(60, 60.0, clock=clock)
    pacer.observe(RateLimitInfo(limit=30, remaining=0, reset=clock.time() + 20.0))
    assert pacer.limit == 30
    before = clock.monotonic()
    await pacer.acquire()
    assert clock.monotonic() - before >= 19.0
    await pacer.close()


async def test_a_cancelled_waiter_does_not_consume_a_turn() -> None:
    clock = ScaledClock(0.001)
    pacer = RequestPacer(60, 60.0, burst=1, clock=clock)
    await pacer.acquire()
    doomed = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    doomed.cancel()
    later = asyncio.create_task(pacer.acquire())
    async with asyncio.timeout(patience(10)):
        await later
    assert pacer.stats.granted == 2
    await pacer.close()
