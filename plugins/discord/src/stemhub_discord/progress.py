"""Coalesced progress edits: at most one edit of a job's message per interval.

Discord rate-limits edits of an interaction's message, and a backend may report progress
many times a second. Hooks only record the newest state of a job here (they never wait on
Discord); one small task per job edits the message when the interval has passed and the
line the user would read actually changed. Delivery calls :meth:`ProgressEditor.finish`
first, which waits for an edit in flight, so a stale progress line never lands on top of
the result. A finished job is remembered with the time of its last state: a hook that
reports an older state afterwards (a ``job_failed`` observer running after delivery began)
starts no new editor; a retried job, newer than that, does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from stemhub import Job, StemhubError
from stemhub_discord.replies import InteractionExpired

log = logging.getLogger(__name__)

Render = Callable[[Job], str]
Edit = Callable[[Job, str], Awaitable[None]]

_REMEMBERED = 4096
"""Finished jobs remembered against late hooks (the oldest are forgotten first)."""


@dataclass
class _Tracked:
    latest: Job
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_text: str | None = None
    last_edit_at: float = float("-inf")
    edits: int = 0
    finished: bool = False
    task: asyncio.Task[None] | None = None


class ProgressEditor:
    def __init__(
        self,
        *,
        interval_s: float,
        render: Render,
        edit: Edit,
        clock: Callable[[], float] = time.monotonic,
        recheck_s: float | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.recheck_s = recheck_s
        """Render again this often without news (a line that depends on the time)."""
        self._render = render
        self._edit = edit
        self._clock = clock
        self._jobs: dict[str, _Tracked] = {}
        self._finished: OrderedDict[str, datetime] = OrderedDict()

    def update(self, job: Job) -> None:
        """Record the job's newest state; an edit follows when the interval allows."""
        finished_at = self._finished.get(job.id)
        if finished_at is not None and job.updated_at <= finished_at:
            return
        tracked = self._jobs.get(job.id)
        if tracked is None:
            tracked = self._jobs[job.id] = _Tracked(latest=job)
        elif tracked.finished:
            return
        elif job.updated_at >= tracked.latest.updated_at:
            tracked.latest = job
        tracked.changed.set()
        if tracked.task is None:
            tracked.task = asyncio.create_task(
                self._run(tracked), name=f"discord-progress-{job.id}"
            )

    async def finish(self, job: Job) -> int:
        """Stop editing a job (its result comes next); returns how many edits were made."""
        self._remember_finished(job)
        tracked = self._jobs.pop(job.id, None)
        if tracked is None:
            return 0
        tracked.finished = True
        async with tracked.lock:
            task = tracked.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return tracked.edits

    async def close(self) -> None:
        for tracked in list(self._jobs.values()):
            await self.finish(tracked.latest)

    def _remember_finished(self, job: Job) -> None:
        tracked = self._jobs.get(job.id)
        newest = max(job.updated_at, tracked.latest.updated_at) if tracked else job.updated_at
        self._finished[job.id] = newest
        self._finished.move_to_end(job.id)
        while len(self._finished) > _REMEMBERED:
            self._finished.popitem(last=False)

    async def _run(self, tracked: _Tracked) -> None:
        while not tracked.finished:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.recheck_s):
                    await tracked.changed.wait()
            tracked.changed.clear()
            wait = tracked.last_edit_at + self.interval_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            async with tracked.lock:
                if tracked.finished:
                    return
                job = tracked.latest
                text = self._render(job)
                if text == tracked.last_text:
                    continue
                try:
                    await self._edit(job, text)
                except InteractionExpired:
                    tracked.finished = True
                    return
                except StemhubError as error:
                    log.info("progress edit of job %s failed: %s", job.id, error.operator_message)
                tracked.last_text = text
                tracked.edits += 1
                tracked.last_edit_at = self._clock()


__all__ = ["ProgressEditor"]
