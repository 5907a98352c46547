"""Request rate limits as fixed-window counters in the store.

An HTTP API that publishes ``X-RateLimit-*`` headers counts every request, so the count
must be one cheap atomic statement: an upsert that adds one to the row of (subject,
window) and returns the new count. The counter lives in the database, so a limit holds
across restarts and across hubs sharing it. (Job quotas, a few per hour, use the exact
sliding log of :meth:`stemhub.store.Store.take_quota` instead.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from stemhub.store import metadata

if TYPE_CHECKING:
    from stemhub.store import Store

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


async def hit(
    store: Store, subject: str, *, limit: int, window_s: float, now: float | None = None
) -> RateWindow:
    """Count one request of ``subject`` and return its window (refused ones count too)."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    table = rate_windows
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    upsert = (
        insert(table)
        .values(subject=subject, window=window, count=1)
        .on_conflict_do_update(
            index_elements=[table.c.subject, table.c.window],
            set_={"count": table.c.count + 1},
        )
        .returning(table.c.count)
    )
    async with store.engine.begin() as conn:
        used = int((await conn.execute(upsert)).scalar_one())
        if used == 1:
            await conn.execute(
                table.delete().where(table.c.subject == subject, table.c.window < window)
            )
    return RateWindow(limit=limit, used=used, reset_at=(window + 1) * window_s)


__all__ = ["RateWindow", "hit", "rate_windows"]
