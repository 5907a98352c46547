"""Waiting for an :class:`asyncio.Event` with a time limit, without losing a cancel.

On Python 3.11 ``asyncio.wait_for(event.wait(), t)`` returns normally when a cancel of
the waiting task lands in the same turn of the loop as the event being set: the cancel
is lost, and a task told to stop goes on (seen: Ctrl-C on ``stemhub split`` ignored).
``asyncio.timeout`` tells its own expiry from an outside cancel, so every event wait with
a limit goes through :func:`wait_event`.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float | None) -> bool:
    """True once ``event`` is set, False after ``timeout_s`` (None: no limit)."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


__all__ = ["wait_event"]
