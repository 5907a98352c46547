"""Coalesced progress edits: at most one edit of a job's message per interval.

Discord rate-limits edits of an interaction's message, and a backend may report progress
many times a second. Hooks only record the newest state of a job here (they never wait on
Discord); one small task per job edits the message when the interval has passed and the
line the user would read actually changed. Delivery calls :meth:`ProgressEditor.finish`
first, which waits for an edit in flight, so a stale progress line never lands on top of
the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from stemhub import Job, StemhubError
from stemhub_discord.replies import InteractionExpired

log = logging.getLogger(__name__)

Render = Callable[[Job], str]
Edit = Callable[[Job, str], Awaitable[None]]


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
    ) -> None:
        self.interval_s = interval_s
        self._render = render
        self._edit = edit
        self._clock = clock
        self._jobs: dict[str, _Tracked] = {}

    def update(self, job: Job) -> None:
        """Record the job's newest state; an edit follows when the interval allows."""
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

    async def finish(self, job_id: str) -> int:
        """Stop editing a job (its result comes next); returns how many edits were made."""
        tracked = self._jobs.pop(job_id, None)
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
        for job_id in list(self._jobs):
            await self.finish(job_id)

    async def _run(self, tracked: _Tracked) -> None:
        while not tracked.finished:
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
