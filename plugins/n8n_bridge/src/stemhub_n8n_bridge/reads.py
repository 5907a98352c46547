"""Answers to ``GET /jobs/{id}`` kept for a moment: polling clients ask the same thing again.

An n8n workflow or the StemSplit SDK polls one job every second or so, and the answer
changes far less often than that. Each process keeps the rendered body of a job it read
for ``ttl_s`` (one second by default), per dialect; this hub's own changes to a job
(progress, completion, failure, delivery) drop it at once through the lifecycle hooks,
so only another hub's change can show up to ``ttl_s`` late. Ownership is checked on
every request against the kept job, never skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stemhub import Job

MAX_KEPT = 10_000


Render = Callable[["Job"], Awaitable[tuple[bytes, bool]]]
"""A job's body, and whether it may be kept (not when links about to expire were refreshed)."""


class RecentReads:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._kept: dict[str, dict[str, tuple[float, Job, bytes]]] = {}
        self._flights: dict[tuple[str, str], asyncio.Future[tuple[Job, bytes] | None]] = {}

    async def get(
        self,
        dialect: str,
        job_id: str,
        load: Callable[[str], Awaitable[Job | None]],
        render: Render,
    ) -> tuple[Job, bytes] | None:
        """The job and its rendered body: a kept one, or ``load`` and ``render`` now."""
        kept = self._kept.get(job_id, {}).get(dialect)
        if kept is not None and kept[0] > self.clock():
            return kept[1], kept[2]
        if self.ttl_s <= 0:
            return await self._read(dialect, job_id, load, render)
        flight = self._flights.get((dialect, job_id))
        if flight is None:
            flight = asyncio.ensure_future(self._read(dialect, job_id, load, render))
            self._flights[(dialect, job_id)] = flight
            flight.add_done_callback(lambda _f: self._flights.pop((dialect, job_id), None))
        return await asyncio.shield(flight)

    async def _read(
        self,
        dialect: str,
        job_id: str,
        load: Callable[[str], Awaitable[Job | None]],
        render: Render,
    ) -> tuple[Job, bytes] | None:
        """One read for every request that missed at once (no stampede on the store)."""
        job = await load(job_id)
        if job is None:
            return None
        body, keep = await render(job)
        if keep and self.ttl_s > 0:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            expires = self.clock() + self.ttl_s
            self._kept.setdefault(job_id, {})[dialect] = (expires, job, body)
        return job, body

    def forget(self, job_id: str) -> None:
        """This hub changed the job: the next read goes to the store."""
        self._kept.pop(job_id, None)


__all__ = ["RecentReads"]
