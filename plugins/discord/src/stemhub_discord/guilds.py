"""Servers the bot was removed from: their jobs are cancelled and nothing is posted there.

Discord sends GUILD_DELETE when the bot leaves a server or is removed from it, and also
when a server becomes unavailable in an outage; only the outage sets ``unavailable``
(``events/gateway-events#guild-delete``). discord.py reports the first as
``guild_remove`` and the second as ``guild_unavailable``, and only the first reaches
:meth:`RemovedGuilds.removed`: an outage cancels nothing.

A removal is kept in the hub's store with its time, so a delivery of a job asked there
before (on this hub or another, before or after a restart) posts nothing; a job asked
after the bot was added again is delivered as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from stemhub import Job, JobStatus, PluginHub, StemhubError, utcnow
from stemhub_discord.settings import PLATFORM

log = logging.getLogger(__name__)

REMEMBER_S = 30 * 24 * 3600.0
"""How long a removal is remembered: longer than any job waits for its delivery."""
_PAGE = 500

StopProgress = Callable[[Job], Awaitable[object]]


class RemovedGuilds:
    def __init__(self, hub: PluginHub) -> None:
        self.hub = hub
        self._removed: dict[str, float] = {}
        """Guild id -> when the bot was removed (seconds since the epoch), seen here."""

    async def removed(self, guild_id: int, *, stop_progress: StopProgress) -> list[str]:
        """The bot was removed from ``guild_id``: cancel its unfinished jobs (their ids).

        Each job's progress edits stop first, then :meth:`PluginHub.cancel` stops the job
        (and its separation); the cancel notice that follows is not posted
        (:meth:`asked_before_removal` says so to the delivery).
        """
        guild = str(guild_id)
        at = utcnow().timestamp()
        self._removed[guild] = at
        await self.hub.kv(PLATFORM).put(f"removed:{guild}", at, ttl_s=REMEMBER_S)
        cancelled: list[str] = []
        # newest first: a job waiting for a turn goes before the one holding it lets go
        for job in await self._unfinished_in(guild, asked_by=at):
            await stop_progress(job)
            try:
                await self.hub.cancel(job.id)
            except StemhubError as error:  # it ended meanwhile
                log.info("job %s of removed guild %s: %s", job.id, guild, error.message)
                continue
            cancelled.append(job.id)
        log.info("removed from guild %s: cancelled %d jobs", guild, len(cancelled))
        return cancelled

    def known_removed(self, job: Job) -> bool:
        """Whether this hub saw the bot removed from the job's server after it was asked."""
        at = self._removed.get(job.origin.guild_id or "")
        return at is not None and job.created_at.timestamp() <= at

    async def asked_before_removal(self, job: Job) -> bool:
        """Whether the job was asked in a server the bot was removed from since."""
        guild = job.origin.guild_id
        if guild is None:
            return False
        if self.known_removed(job):
            return True
        stored = await self.hub.kv(PLATFORM).get(f"removed:{guild}")
        return isinstance(stored, int | float) and job.created_at.timestamp() <= stored

    async def _unfinished_in(self, guild: str, *, asked_by: float) -> list[Job]:
        """Unfinished jobs asked in ``guild`` until ``asked_by`` (not after a new invite),
        newest first."""
        found: list[Job] = []
        offset = 0
        while True:
            page = await self.hub.list_jobs(
                statuses=[JobStatus.QUEUED, JobStatus.RUNNING],
                platform=PLATFORM,
                limit=_PAGE,
                offset=offset,
            )
            found += [
                job
                for job in page
                if job.origin.guild_id == guild and job.created_at.timestamp() <= asked_by
            ]
            if len(page) < _PAGE:
                return found
            offset += _PAGE


__all__ = ["REMEMBER_S", "RemovedGuilds"]
