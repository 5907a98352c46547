"""A real hub and its HTTP server on loopback, run in a thread of their own.

Browser tests drive Playwright's sync API from the test thread, which must not be
inside an event loop; the hub lives in this thread with its own loop, and tests call
into it with :meth:`HubThread.call`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from stemhub.config import Settings
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.plugin.manager import StemhubPluginManager, get_plugin_manager
from stemhub.testing import free_port

T = TypeVar("T")


class HubThread:
    def __init__(self, settings: Settings, pm: StemhubPluginManager | None = None) -> None:
        self.settings = settings
        self.pm = pm or get_plugin_manager(only=())
        self.loop = asyncio.new_event_loop()
        self.hub: Hub
        self.url = ""
        self._stop: asyncio.Event
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="stemhub-test-hub", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with Hub(self.settings, pm=self.pm) as hub:
                self.hub = hub
                async with HubServer(hub, port=self.settings.http_port).running() as server:
                    self.url = server.url
                    self._ready.set_result(None)
                    await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def start(self) -> HubThread:
        self._thread.start()
        self._ready.result(timeout=60)
        return self

    def call(self, make: Callable[[Hub], Awaitable[T]], timeout: float = 300) -> T:
        """Run ``make(hub)`` on the hub's loop and wait for its result."""

        async def run() -> T:
            return await make(self.hub)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)


__all__ = ["HubThread", "free_port"]
