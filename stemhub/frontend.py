"""The protocol of a frontend: a long-running service that takes requests and delivers.

Delivery is routed, not broadcast: the hub calls :meth:`Frontend.deliver` of the frontend
named in ``job.origin.platform`` and records the delivery, so a restarted hub never
delivers the same job twice. A frontend that is not running keeps its jobs waiting in the
deliver stage until it is.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from stemhub.hub import Hub
    from stemhub.models import Job


class Frontend(ABC):
    name: ClassVar[str]

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def run(self) -> None:
        """Serve until cancelled (gateway connection, socket mode, ...).

        The default waits forever: a frontend that only adds HTTP routes needs no loop.
        """
        await asyncio.Event().wait()

    @abstractmethod
    async def deliver(self, job: Job) -> None:
        """Send a finished or failed job's result back to whoever asked.

        Raise :class:`stemhub.errors.StemhubError` with ``retryable=True`` for a failure
        that may pass on a later attempt; the hub retries with backoff.
        """

    async def source_headers(self, job: Job, url: str) -> dict[str, str]:
        """Headers the hub sends when fetching ``url`` for ``job`` (a platform's token).

        Asked at fetch time so no credential is stored with the job. The fetcher sends
        them to the URL's own host only, never across a redirect to another host.
        """
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook for subclasses
        """Release connections; called once when the hub stops."""


__all__ = ["Frontend"]
