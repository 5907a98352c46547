"""The protocol of a frontend: a long-running service that takes requests and delivers.

Delivery is routed, not broadcast: the hub calls :meth:`Frontend.deliver` of the frontend
named in ``job.origin.platform`` and records the delivery, so a restarted hub never
delivers the same job twice. A frontend that is not running keeps its jobs waiting in the
deliver stage until it is.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from stemhub.errors import StemhubError
    from stemhub.models import Job
    from stemhub.plugin.api import PluginHub


log = logging.getLogger(__name__)


class Frontend(ABC):
    name: ClassVar[str]

    def __init__(self, hub: PluginHub) -> None:
        self.hub = hub

    async def run(self) -> None:
        """Serve until cancelled (gateway connection, socket mode, ...).

        The default waits forever: a frontend that only adds HTTP routes needs no loop.
        """
        await asyncio.Event().wait()

    @abstractmethod
    async def deliver(self, job: Job) -> None:
        """Send a finished or failed job's result back to whoever asked.

        Any exception is a failed delivery of this job: the hub records its reason and
        tries again within the delivery budget (``STEMHUB_DELIVERY_ATTEMPTS``, with the
        one retry policy; a :class:`stemhub.errors.StemhubError` that is not
        ``retryable`` ends the tries at once). A job whose stems exist stays COMPLETED
        whatever delivery does. When the budget is spent the hub calls
        :meth:`notify_undelivered` once.
        """

    async def notify_undelivered(self, job: Job, error: StemhubError) -> None:
        """Delivery failed for good: tell the person in the plainest way this platform has.

        Called once per job, after :meth:`deliver` spent its budget: a plain text message
        (no files, no embeds, no blocks that could be refused again) in the most private
        place that still reaches the person (the same place a private request was
        answered). ``error.message`` is written for them. The job is then listed by
        ``stemhub jobs list --undelivered`` and counted in ``/metrics``; exceptions
        raised here are logged and end the attempt. The default only logs, for
        frontends (the CLI) whose caller is watching the job anyway.
        """
        log.warning("job %s could not be delivered by %s: %s", job.id, self.name, error.code.value)

    async def source_headers(self, job: Job, url: str) -> dict[str, str]:
        """Headers the hub sends when fetching ``url`` for ``job`` (a platform's token).

        Asked at fetch time so no credential is stored with the job. The fetcher sends
        them to the URL's own host only, never across a redirect to another host.
        """
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook for subclasses
        """Release connections; called once when the hub stops."""


__all__ = ["Frontend"]
