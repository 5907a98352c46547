"""Pacing every request a hub sends to StemSplit under the key's rate limit.

The limit is per API key (60 requests a minute by default), so it is shared by every
job of a hub: one :class:`RequestPacer` per backend instance gates them all. It is a
token bucket sized so that no sliding window of ``window_s`` ever holds more than
``limit`` requests (``burst`` tokens up front, then ``limit - burst`` per window less a
``margin`` for network jitter: 55 a minute for a limit of 60), kept honest by the
server's ``X-RateLimit-*`` headers, and closed for everyone when any request meets a
429, so the hub slows down as a whole instead of hammering.

Several processes on one key (hubs, ``stemhub worker`` processes) each have a pacer, and
their buckets add up. A :class:`SharedWindow` makes the limit theirs together: before a
request goes out, the pacer takes a slot in a sliding log in the hub's store
(``take_quota``, scope ``stemsplit_requests``, subject a hash of the key, never the key),
capped at the limit less the margin, so every process on the key together stays within
the limit, and a restarted process does not start with a fresh burst.

Waiters are served by priority, then in arrival order: requests that finish jobs
(status checks) go before requests that start new ones, which keeps the time from
"separated" to "delivered" short while a backlog of new jobs waits.

:class:`Clock` lets tests and benchmarks run "API time" faster than real time: the fake
server and the backend share one :class:`ScaledClock`, so a 40 s job and a 60 s
rate-limit window both shrink by the same factor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from stemhub.stemsplit_wire import DEFAULT_RATE_LIMIT, RATE_LIMIT_WINDOW_S, RateLimitInfo
from stemhub.waiting import wait_event

log = logging.getLogger("stemhub.backends.stemsplit")

PRIORITY_FINISH = 0
"""Status checks and link refreshes of running jobs."""
PRIORITY_START = 1
"""Upload tickets, job creation, webhook registration."""


class Clock:
    """Real time. Every duration the StemSplit code waits goes through a clock."""

    factor = 1.0

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def to_real(self, seconds: float) -> float:
        """Real seconds that pass while ``seconds`` pass on this clock."""
        return seconds * self.factor

    def from_real(self, seconds: float) -> float:
        """Clock seconds that pass while ``seconds`` real seconds pass."""
        return seconds / self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.to_real(seconds)))


class ScaledClock(Clock):
    """API time running ``1 / factor`` times faster than real time (``factor=0.01``: 100x).

    ``time()`` is an epoch time on the scaled clock, anchored at the real time of
    creation, so ``X-RateLimit-Reset`` epochs written by a fake server with this clock
    read correctly in a backend with the same clock. Two processes share one scaled
    clock by passing :attr:`anchor` (``time.monotonic`` is system-wide).
    """

    def __init__(self, factor: float, anchor: tuple[float, float] | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._mono0, self._wall0 = anchor or (time.monotonic(), time.time())

    @property
    def anchor(self) -> tuple[float, float]:
        """The real (monotonic, epoch) instant where this clock starts running fast."""
        return self._mono0, self._wall0

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) / self.factor

    def time(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) / self.factor


class QuotaTaker(Protocol):
    """What a :class:`SharedWindow` needs of the hub (``PluginHub.take_quota``)."""

    async def take_quota(
        self, scope: str, subject: str, *, limit: int, window_s: float
    ) -> float | None: ...


SHARED_SCOPE = "stemsplit_requests"


class SharedWindow:
    """The key's sliding window in the hub's store, shared by every process on the key.

    The store counts in real seconds (``time.time()`` of each process; the machines of a
    cluster keep their clocks in step); the pacer speaks clock seconds, so both ways are
    converted with the pacer's :class:`Clock`.
    """

    def __init__(self, quota: QuotaTaker, api_key: str) -> None:
        self.quota = quota
        digest = hashlib.sha256(b"stemhub-stemsplit-key:" + api_key.encode()).hexdigest()
        self.subject = digest[:32]
        """What identifies the key in the store: a hash, the key never in clear."""

    async def take(self, limit: int, window_s: float, clock: Clock) -> float | None:
        """One slot for a request now; else the clock seconds until one frees up.

        Raises :class:`SharedWindowUnreachable` when the store does not answer.
        """
        # imported here: a pacer without a shared window (and its tests) never loads it
        from sqlalchemy.exc import SQLAlchemyError

        try:
            wait = await self.quota.take_quota(
                SHARED_SCOPE, self.subject, limit=limit, window_s=clock.to_real(window_s)
            )
        except (OSError, SQLAlchemyError) as exc:
            raise SharedWindowUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return None if wait is None else clock.from_real(wait)


class SharedWindowUnreachable(Exception):
    """The store that holds the shared window did not answer."""


SHARED_UNREACHABLE_PAUSE_S = 1.0
"""When the store cannot be reached, pace alone for this long before asking it again."""


@dataclass
class PacerStats:
    """Counters for ``stemhub doctor`` and the benchmarks."""

    granted: int = 0
    waited: int = 0
    wait_s: float = 0.0
    max_wait_s: float = 0.0
    pauses: int = 0
    shared_waits: int = 0
    """Times the shared window (other processes on the key) held a request back."""
    peak_in_window: int = 0
    """The most requests granted in any ``window_s`` so far (the limit's own measure)."""
    by_priority: dict[int, int] = field(default_factory=dict)


class RequestPacer:
    """A priority token bucket shared by all requests of one API key."""

    def __init__(
        self,
        limit: int = DEFAULT_RATE_LIMIT,
        window_s: float = RATE_LIMIT_WINDOW_S,
        *,
        burst: int | None = None,
        margin: float = 0.1,
        clock: Clock | None = None,
        shared: SharedWindow | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.shared = shared
        self._held_until = 0.0
        self._alone_until = 0.0
        self.window_s = window_s
        self.margin = min(max(margin, 0.0), 0.9)
        self._burst_override = burst
        self.limit = 0
        self.burst = 0
        self._set_limit(limit)
        self._tokens = float(self.burst)
        self._updated = self.clock.monotonic()
        self._paused_until = 0.0
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._recent: deque[float] = deque()
        self.stats = PacerStats()

    def _set_limit(self, limit: int) -> None:
        limit = max(1, limit)
        self.limit = limit
        wanted = self._burst_override if self._burst_override is not None else limit // 6
        self.burst = max(1, min(limit - 1, wanted)) if limit > 1 else 1

    @property
    def rate(self) -> float:
        """Tokens per second of clock time once the burst is spent."""
        return max(self.limit - self.burst, 1) * (1.0 - self.margin) / self.window_s

    @property
    def shared_limit(self) -> int:
        """Requests of every process on the key together in one window (less the margin
        for the time between taking a slot and the request reaching the server)."""
        return max(1, math.floor(self.limit * (1.0 - self.margin)))

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, fut in self._heap if not fut.done())

    def waiting_at(self, priority: int) -> int:
        """Requests of one priority queued for a turn."""
        return sum(1 for p, _, fut in self._heap if p == priority and not fut.done())

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _delay(self) -> float:
        """Clock seconds until the next token can be granted (0: now)."""
        now = self.clock.monotonic()
        until = max(self._paused_until, self._held_until)
        if until > now:
            return until - now
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self, priority: int = PRIORITY_START) -> None:
        """Wait for a turn to send one request."""
        started = self.clock.monotonic()
        # with a shared window every grant awaits the store: only the dispatcher grants
        if self.shared is None and not self._heap and self._delay() == 0.0:
            self._grant(priority, started)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (priority, next(self._seq), future))
        self._ensure_dispatcher()
        self._kick.set()
        await future
        self._grant(priority, started, taken=True)

    def _grant(self, priority: int, started: float, *, taken: bool = False) -> None:
        if not taken:
            self._tokens -= 1.0
        now = self.clock.monotonic()
        waited = now - started
        recent = self._recent
        recent.append(now)
        while recent[0] <= now - self.window_s:
            recent.popleft()
        stats = self.stats
        stats.peak_in_window = max(stats.peak_in_window, len(recent))
        stats.granted += 1
        stats.by_priority[priority] = stats.by_priority.get(priority, 0) + 1
        if waited > 0:
            stats.waited += 1
            stats.wait_s += waited
            stats.max_wait_s = max(stats.max_wait_s, waited)

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name="stemsplit-pacer"
            )

    async def _dispatch(self) -> None:
        while self._heap:
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap:
                break
            delay = self._delay()
            if delay > 0:
                self._kick.clear()
                # a pause can be extended meanwhile: re-check after waking
                await wait_event(self._kick, self.clock.to_real(delay))
                continue
            if not await self._take_shared():
                continue
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap:
                break  # every waiter left while the store answered: the slot goes unused
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                self._tokens -= 1.0
                future.set_result(None)

    async def _take_shared(self) -> bool:
        """A slot in the shared window (True), or a hold until one frees up (False)."""
        shared = self.shared
        if shared is None or self._alone_until > self.clock.monotonic():
            return True
        try:
            wait = await shared.take(self.shared_limit, self.window_s, self.clock)
        except SharedWindowUnreachable as exc:
            # the local bucket still paces this process; other processes may add to it
            log.warning("the shared StemSplit rate window is unreachable (%s); pacing alone", exc)
            self._alone_until = self.clock.monotonic() + SHARED_UNREACHABLE_PAUSE_S
            return True
        if wait is None:
            return True
        self.stats.shared_waits += 1
        self._held_until = self.clock.monotonic() + wait
        return False

    def pause(self, seconds: float) -> None:
        """Stop granting anyone for ``seconds`` (a 429's Retry-After)."""
        until = self.clock.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.stats.pauses += 1
        self._refill()
        self._tokens = min(self._tokens, 0.0)
        self._kick.set()

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self.clock.monotonic())

    def observe(self, info: RateLimitInfo) -> None:
        """Follow the server's view of the window (shared key, different limit)."""
        if info.limit is not None and info.limit != self.limit:
            self._set_limit(info.limit)
        if info.remaining is None:
            return
        self._refill()
        self._tokens = min(self._tokens, float(info.remaining))
        # a 429's Retry-After is more precise than the window's reset; the caller pauses
        if info.remaining <= 0 and info.retry_after is None:
            wait = info.reset_in(self.clock.time())
            if wait is not None and wait > 0:
                self.pause(min(wait, self.window_s))

    async def close(self) -> None:
        task, self._dispatcher = self._dispatcher, None
        for _, _, future in self._heap:
            if not future.done():
                future.cancel()
        self._heap.clear()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = [
    "PRIORITY_FINISH",
    "PRIORITY_START",
    "SHARED_SCOPE",
    "Clock",
    "PacerStats",
    "QuotaTaker",
    "RequestPacer",
    "ScaledClock",
    "SharedWindow",
    "SharedWindowUnreachable",
]
