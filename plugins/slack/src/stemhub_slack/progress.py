"""Progress as edits of one status message, coalesced to one ``chat.update`` per interval.

Slack allows about one message write per second per channel and rate-limits
``chat.update``; a separation reports progress far more often. Each job gets at most one
edit in flight; newer states replace older ones while it waits, so the last state always
shows and no edit ever lands after the final one (:meth:`ProgressEdits.finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackClientError

log = logging.getLogger(__name__)

EditFn = Callable[[dict[str, Any], str], Awaitable[None]]
"""``edit(status_message, text)``: one ``chat.update`` of the status message."""


class ProgressEdits:
    def __init__(self, edit: EditFn, interval_s: float) -> None:
        self._edit = edit
        self.interval_s = interval_s
        self._latest: dict[str, tuple[dict[str, Any], str]] = {}
        self._shown: dict[str, str] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._editing: set[str] = set()
        self._finished: set[str] = set()

    def update(self, job_id: str, status: dict[str, Any], text: str) -> None:
        """Show ``text`` soon; replaces any state of this job not yet shown."""
        if job_id in self._finished or self._shown.get(job_id) == text:
            return
        self._latest[job_id] = (status, text)
        if job_id not in self._workers:
            self._workers[job_id] = asyncio.create_task(
                self._work(job_id), name=f"slack-progress-{job_id}"
            )

    async def _work(self, job_id: str) -> None:
        try:
            while (item := self._latest.pop(job_id, None)) is not None:
                status, text = item
                self._editing.add(job_id)
                try:
                    await self._edit(status, text)
                except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as error:
                    log.info("progress edit of job %s failed: %s", job_id, error)
                finally:
                    self._editing.discard(job_id)
                self._shown[job_id] = text
                if job_id in self._finished:
                    return
                await asyncio.sleep(self.interval_s)
        finally:
            if self._workers.get(job_id) is asyncio.current_task():
                del self._workers[job_id]

    async def finish(self, job_id: str) -> None:
        """Stop editing a job's status: its final text is about to be written.

        An edit already sent is waited for, so it cannot land after the final text.
        """
        self._finished.add(job_id)
        self._latest.pop(job_id, None)
        self._shown.pop(job_id, None)
        worker = self._workers.pop(job_id, None)
        if worker is not None:
            if job_id not in self._editing:
                worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def forget(self, job_id: str) -> None:
        """Drop what is remembered of a delivered job."""
        self._finished.discard(job_id)

    async def close(self) -> None:
        for job_id in list(self._workers):
            await self.finish(job_id)


__all__ = ["EditFn", "ProgressEdits"]
