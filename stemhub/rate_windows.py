"""Request rate limits as fixed-window counters in the store.

An HTTP API that publishes ``X-RateLimit-*`` headers counts every request, so the count
must be one cheap atomic statement: an upsert that adds one to the row of (subject,
window) and returns the new count. The counter lives in the database, so a limit holds
across restarts and across hubs sharing it. (Job quotas, a few per hour, use the exact
sliding log of :meth:`stemhub._store.Store.take_quota` instead.)

A write per request still costs more than the request it guards (a read answered from
memory), so :class:`RateCounter` counts in memory and adds its counts to the store in one
statement per subject at most every ``flush_s`` (in the background), and at once for a
subject past half its limit, so refusals near the limit rest on the store's count of
every hub. What a crash loses is at most ``flush_s`` of counts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from stemhub._store import metadata

if TYPE_CHECKING:
    from stemhub._store import Store

log = logging.getLogger(__name__)

rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("window", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class RateWindow:
    """The state of one subject's window after counting a request."""

    limit: int
    used: int
    reset_at: float
    """Epoch seconds when the window ends."""

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit

    def retry_after(self, now: float) -> float:
        return max(1.0, math.ceil(self.reset_at - now))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


async def _add(store: Store, counts: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Add ``counts`` to the store's windows in one transaction; the new totals."""
    table = rate_windows
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    totals: dict[tuple[str, int], int] = {}
    async with store.engine.begin() as conn:
        for (subject, window), n in counts.items():
            upsert = (
                insert(table)
                .values(subject=subject, window=window, count=n)
                .on_conflict_do_update(
                    index_elements=[table.c.subject, table.c.window],
                    set_={"count": table.c.count + n},
                )
                .returning(table.c.count)
            )
            used = int((await conn.execute(upsert)).scalar_one())
            if used == n:
                await conn.execute(
                    table.delete().where(table.c.subject == subject, table.c.window < window)
                )
            totals[(subject, window)] = used
    return totals


async def hit(
    store: Store, subject: str, *, limit: int, window_s: float, now: float | None = None
) -> RateWindow:
    """Count one request of ``subject`` and return its window (refused ones count too)."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    used = (await _add(store, {(subject, window): 1}))[(subject, window)]
    return RateWindow(limit=limit, used=used, reset_at=(window + 1) * window_s)


class RateCounter:
    """Fixed windows counted in memory and added to the store in batches (see above)."""

    def __init__(
        self,
        store: Store,
        *,
        flush_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.flush_s = flush_s
        self.clock = clock
        self._pending: dict[tuple[str, int], int] = {}
        self._stored: dict[tuple[str, int], int] = {}
        self._writing: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()
        self._flushed_at = clock()
        self._background: asyncio.Task[None] | None = None

    async def hit(
        self, subject: str, *, limit: int, window_s: float, now: float | None = None
    ) -> RateWindow:
        """Count one request of ``subject``; the window as this hub knows it."""
        now = time.time() if now is None else now
        key = (subject, int(now // window_s))
        self._pending[key] = self._pending.get(key, 0) + 1
        stored = self._stored.get(key, 0)
        if stored <= limit and 2 * self._known(key) > limit:
            await self.flush()
        elif self.clock() - self._flushed_at >= self.flush_s and self._background is None:
            self._background = asyncio.create_task(self._flush_in_background())
        return RateWindow(limit=limit, used=self._known(key), reset_at=(key[1] + 1) * window_s)

    def _known(self, key: tuple[str, int]) -> int:
        """The store's count as last read, plus what this hub counted since."""
        counted = self._pending.get(key, 0) + self._writing.get(key, 0)
        return self._stored.get(key, 0) + counted

    async def _flush_in_background(self) -> None:
        try:
            await self.flush()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("rate counts not written yet (%s); trying again later", exc)
        finally:
            self._background = None

    async def close(self) -> None:
        """Finish the flush under way and write what is left (before the store closes)."""
        background = self._background
        if background is not None:
            await asyncio.gather(background, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Add what was counted since the last flush to the store."""
        async with self._lock:
            self._flushed_at = self.clock()
            counts, self._pending = self._pending, {}
            if not counts:
                return
            self._writing = counts
            try:
                totals = await _add(self.store, counts)
            except BaseException:
                for key, n in counts.items():
                    self._pending[key] = self._pending.get(key, 0) + n
                raise
            finally:
                self._writing = {}
            latest: dict[str, int] = {}
            for subject, window in totals:
                latest[subject] = max(window, latest.get(subject, window))
            kept = {k: n for k, n in self._stored.items() if k[1] >= latest.get(k[0], k[1])}
            self._stored = kept | totals


__all__ = ["RateCounter", "RateWindow", "hit", "rate_windows"]
