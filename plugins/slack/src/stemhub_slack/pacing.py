"""One pacer for every message write of the app: chat.postMessage and chat.update.

Slack allows about one message per second per channel (chat.postMessage) and rate-limits
chat.update per workspace (Tier 3); a 429 carries ``Retry-After``. Every job of the
workspace shares this pacer, so ten jobs in one channel still make one write per
``channel_interval_s`` there, and a 429 holds back every caller of that method (and, for
chat.postMessage, of that channel) until ``Retry-After`` has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from slack_sdk.errors import SlackApiError

T = TypeVar("T")

MAX_RETRY_AFTER_S = 120.0
"""A longer ``Retry-After`` is not waited for here: the delivery retry budget takes over."""


def retry_after_of(error: SlackApiError) -> float | None:
    """Seconds from a 429's ``Retry-After`` header, or None when it is not a 429."""
    if error.response.status_code != 429:
        return None
    headers = error.response.headers or {}
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return max(0.0, float(raw)) if raw is not None else 1.0
    except ValueError:
        return 1.0


class Pacer:
    """Spaces writes per channel and honours ``Retry-After`` per method and channel."""

    def __init__(self, channel_interval_s: float = 1.0, *, retries: int = 3) -> None:
        self.channel_interval_s = channel_interval_s
        self.retries = retries
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_at: dict[str, float] = {}
        self._method_blocked_until: dict[str, float] = {}

    async def send(self, method: str, channel: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` (one write of ``method`` to ``channel``) when its turn comes.

        A 429 is waited out (``Retry-After``) and tried again, ``retries`` times; any
        other error, or a wait longer than :data:`MAX_RETRY_AFTER_S`, is raised.
        """
        lock = self._locks.setdefault(channel, asyncio.Lock())
        tries = 0
        while True:
            async with lock:
                await self._wait_turn(method, channel)
                try:
                    return await call()
                except SlackApiError as error:
                    wait = retry_after_of(error)
                    tries += 1
                    if wait is None or tries > self.retries or wait > MAX_RETRY_AFTER_S:
                        raise
                    until = time.monotonic() + wait
                    self._method_blocked_until[method] = max(
                        until, self._method_blocked_until.get(method, 0.0)
                    )
                    self._next_at[channel] = max(until, self._next_at.get(channel, 0.0))
                finally:
                    self._next_at[channel] = max(
                        self._next_at.get(channel, 0.0), time.monotonic() + self.channel_interval_s
                    )

    async def _wait_turn(self, method: str, channel: str) -> None:
        while True:
            now = time.monotonic()
            ready = max(
                self._next_at.get(channel, 0.0), self._method_blocked_until.get(method, 0.0)
            )
            if ready <= now:
                return
            await asyncio.sleep(ready - now)


__all__ = ["MAX_RETRY_AFTER_S", "Pacer", "retry_after_of"]
