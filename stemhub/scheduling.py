"""Fair work slots: jobs start in round-robin across tenants, not in arrival order.

A plain semaphore wakes waiters first come, first served, so one API key that submits
200 jobs puts every other tenant's job behind all 200. :class:`FairSlots` keeps one
queue per tenant (an API key, a Discord guild, a Slack workspace, a CLI user) and hands
a freed slot to the next tenant in turn, so a tenant with one job waits for about one
job's worth of work, whatever another tenant queued.

The tenant of a job comes from its origin (:func:`tenant_of`). ``fair=False`` turns the
round-robin off (one queue for everybody), for the benchmark's comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from stemhub.models import Origin


def tenant_of(origin: Origin) -> str:
    """Whose share a job counts against: API key, guild/workspace, else the user."""
    if origin.api_key_id:
        return f"key:{origin.api_key_id}"
    if origin.guild_id:
        return f"{origin.platform}:{origin.guild_id}"
    return f"{origin.platform}:user:{origin.user_id or '-'}"


class FairSlots:
    """At most ``capacity`` holders at once, handed out round-robin by tenant."""

    def __init__(self, capacity: int, *, fair: bool = True) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.fair = fair
        self._in_use = 0
        # tenant -> its waiters, in the order tenants get their next turn
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._holders: dict[str, asyncio.Future[None]] = {}
        """Waiters that said who they are (a job id), for :meth:`position`."""

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str, *, holder: str | None = None) -> AsyncIterator[None]:
        await self.acquire(tenant, holder=holder)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, tenant: str, *, holder: str | None = None) -> None:
        """Wait for a slot; ``holder`` (a job id) lets :meth:`position` find this wait."""
        if self._in_use < self.capacity and not self._queues:
            self._in_use += 1
            return
        key = tenant if self.fair else ""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(waiter)
        if holder is not None:
            self._holders[holder] = waiter
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # granted as we were cancelled: pass the slot on
                self.release()
            else:
                self._forget(key, waiter)
            raise
        finally:
            if holder is not None and self._holders.get(holder) is waiter:
                del self._holders[holder]

    def position(self, holder: str) -> int | None:
        """How many waiters get a slot before ``holder`` (None: it is not waiting here).

        The round-robin read ahead: every tenant's queue gives one waiter per round, in
        the tenants' order, so the waiter at index ``i`` of its tenant's queue comes after
        ``i`` full rounds (at most ``i`` from each tenant) and after the tenants before
        its own in round ``i``. Waiters that arrive later can still come first (a new
        tenant's one job does): the figure is what is known now.
        """
        waiter = self._holders.get(holder)
        if waiter is None or waiter.done():
            return None
        queues = list(self._queues.values())
        found = [(turn, q.index(waiter)) for turn, q in enumerate(queues) if waiter in q]
        if not found:
            return None
        (turn, index), *_ = found
        rounds = sum(min(len(queue), index) for queue in queues)
        return rounds + sum(1 for queue in queues[:turn] if len(queue) > index)

    def release(self) -> None:
        self._in_use -= 1
        self._grant()

    def _forget(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if not queue:
            del self._queues[key]

    def _grant(self) -> None:
        while self._in_use < self.capacity and self._queues:
            key, queue = next(iter(self._queues.items()))
            waiter = queue.popleft()
            # this tenant goes to the back of the line for its next job
            del self._queues[key]
            if queue:
                self._queues[key] = queue
            if waiter.done():
                continue
            self._in_use += 1
            waiter.set_result(None)


__all__ = ["FairSlots", "tenant_of"]
