"""Group commit for the job table: many small job writes share one transaction.

Each job transition is a tiny write; at thousands of jobs in flight a transaction per
write (pool checkout, BEGIN, COMMIT, and on SQLite a fight for the one write lock with
sleeping retries) made the store the hub's bottleneck. :class:`JobWriter` commits what is
queued as one batch, and on a SQLite file it commits on the event loop's own thread when
the write lock is free, keeping the slow part of SQLite's WAL mode (the checkpoint, which
syncs files to disk) on a thread of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another one's write lock."""

CHECKPOINT_EVERY_S = 1.0
"""How often the writer folds SQLite's write-ahead log into the database file."""


@dataclass(eq=False)
class _Write:
    statement: sa.Executable
    params: dict[str, Any]
    batchable: bool
    """True when the caller needs no row count: runs of it go as one executemany."""
    future: asyncio.Future[int]


def _execute_batch(conn: Connection, batch: list[_Write]) -> list[int | Exception]:
    """Run a batch in the caller's transaction; the row count of each write."""
    outcomes: list[int | Exception] = []
    for (_, batchable), run in itertools.groupby(
        batch, key=lambda w: (id(w.statement), w.batchable)
    ):
        writes = list(run)
        if batchable and len(writes) > 1:
            conn.execute(writes[0].statement, [write.params for write in writes])
            outcomes.extend(1 for _ in writes)
        else:
            outcomes.extend(
                conn.execute(write.statement, write.params).rowcount for write in writes
            )
    return outcomes


def _commit_replaying(conn: Connection, batch: list[_Write]) -> list[int | Exception]:
    """A batch in one transaction; replayed one write per transaction on a constraint error.

    Only a constraint error belongs to one write (an idempotency key used twice); any
    other error (the database locked past the busy timeout, a full disk) is every
    write's, and replaying would only wait for it again.
    """
    try:
        with conn.begin():
            return _execute_batch(conn, batch)
    except IntegrityError as error:
        if len(batch) == 1:
            return [error]
    except SQLAlchemyError as error:
        return [error for _ in batch]
    outcomes: list[int | Exception] = []
    for write in batch:
        try:
            with conn.begin():
                outcomes.extend(_execute_batch(conn, [write]))
        except SQLAlchemyError as error:
            outcomes.append(error)
    return outcomes


def _commit_on_thread(engine: Engine, batch: list[_Write]) -> list[int | Exception]:
    """:func:`_commit_replaying` on a SQLite file, on the writer's thread (waits for the lock)."""
    with engine.connect() as conn:
        return _commit_replaying(conn, batch)


def _commit_if_free(engine: Engine, batch: list[_Write]) -> list[int | Exception] | None:
    """The batch committed on the calling thread, or None if that would have to wait.

    ``engine``'s connections do not wait for the write lock (``busy_timeout=0``): when
    another connection holds it, or a constraint error wants the one-by-one replay, the
    transaction is rolled back whole and the caller hands the batch to
    :func:`_commit_on_thread`, which waits and replays as usual.
    """
    try:
        with engine.begin() as conn:
            return _execute_batch(conn, batch)
    except (OperationalError, IntegrityError):
        return None


def _checkpoint(engine: Engine) -> None:
    """Copy what the write-ahead log holds into the database file, waiting for nobody."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _log_checkpoint_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.warning("SQLite checkpoint failed (retried in %.0f s): %s", CHECKPOINT_EVERY_S, error)


async def _commit_async(engine: AsyncEngine, batch: list[_Write]) -> list[int | Exception]:
    """:func:`_commit_replaying` on the async engine (PostgreSQL, in-memory SQLite)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_commit_replaying, batch)


class JobWriter:
    """One writer for the job table: every write queued meanwhile shares one transaction.

    Writes are committed up to ``max_batch`` at a time, runs of the same statement as one
    executemany. A caller still returns only once its write is committed. A constraint
    error replays the batch one write per transaction, so the write that broke it fails
    alone (an idempotency conflict stays that caller's IntegrityError). A write whose
    caller was cancelled before its batch started is dropped, as its transaction would
    have been.

    ``urgent`` writes (a job that finished: someone waits for its delivery) do not queue
    behind thousands of jobs that are only starting: on SQLite with the lock free they
    commit at once, in the caller's turn; otherwise they form the next batch, ahead of
    the others. Measured, that queue was nearly all of the p99 latency between a
    backend's answer and the delivery at 10,000 jobs in flight.

    On a SQLite file (``sync_engine``, plain pysqlite) a batch is committed right on the
    event loop's thread when the write lock is free: a commit without a checkpoint is a
    fraction of a millisecond of work, far less than handing it to a thread that then
    waits for the GIL at every statement while the loop is busy (measured: commits of a
    few writes took 5-30 ms that way under load). When another connection holds the lock
    the batch goes to the writer's thread, which waits for it. Those connections run with
    SQLite's automatic checkpoint off; the writer's thread checkpoints (PASSIVE, so
    writers never wait for it) at most every :data:`CHECKPOINT_EVERY_S`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        sync_engine: Engine | None = None,
        nowait_engine: Engine | None = None,
        *,
        max_batch: int = 64,
    ) -> None:
        self.engine = engine
        self.sync_engine = sync_engine
        """SQLite through pysqlite, waiting for the write lock: the writer's thread."""
        self.nowait_engine = nowait_engine if sync_engine is not None else None
        """The same database, never waiting for the lock: commits on the event loop."""
        self.max_batch = max_batch
        self._pending: list[_Write] = []
        self._urgent: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._thread: ThreadPoolExecutor | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpointed_at = time.monotonic()

    async def write(
        self,
        statement: sa.Executable,
        params: dict[str, Any],
        *,
        batchable: bool = False,
        urgent: bool = False,
    ) -> int:
        """One statement's row count, once the transaction holding it committed."""
        loop = asyncio.get_running_loop()
        write = _Write(statement, params, batchable, loop.create_future())
        if urgent and self.nowait_engine is not None and not self._closing:
            # no queue at all for a finished job's write when the lock is free
            done = _commit_if_free(self.nowait_engine, [write])
            if done is not None:
                self._checkpoint_now_and_then()
                if isinstance(done[0], Exception):
                    raise done[0]
                return done[0]
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(), name="stemhub-store-writer")
        (self._urgent if urgent else self._pending).append(write)
        self._wakeup.set()
        return await write.future

    def _take(self) -> list[_Write]:
        """The next batch: urgent writes first, then the others, in arrival order."""
        if self._urgent:
            taken = self._urgent[: self.max_batch]
            del self._urgent[: self.max_batch]
        else:
            taken = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
        return [write for write in taken if not write.future.done()]

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._urgent or self._pending:
                batch = self._take()
                if batch:
                    await self._commit(batch)
            if self._closing:
                return

    def _executor(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="stemhub-store")
        return self._thread

    async def _commit(self, batch: list[_Write]) -> None:
        outcomes: list[int | Exception] | None
        try:
            if self.sync_engine is None:
                outcomes = await _commit_async(self.engine, batch)
            else:
                outcomes = None
                if self.nowait_engine is not None:
                    outcomes = _commit_if_free(self.nowait_engine, batch)
                if outcomes is None:
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self._executor(), _commit_on_thread, self.sync_engine, batch
                    )
                self._checkpoint_now_and_then()
        except asyncio.CancelledError:
            for write in batch:
                write.future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - a bug must reach the callers, not hang them
            outcomes = [error for _ in batch]
        for write, outcome in zip(batch, outcomes, strict=True):
            if write.future.done():
                continue
            if isinstance(outcome, Exception):
                write.future.set_exception(outcome)
            else:
                write.future.set_result(outcome)
        # the callers run before the next batch is taken
        await asyncio.sleep(0)

    def _checkpoint_now_and_then(self) -> None:
        engine = self.sync_engine
        if engine is None:
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        if time.monotonic() - self._checkpointed_at < CHECKPOINT_EVERY_S:
            return
        self._checkpointed_at = time.monotonic()
        loop = asyncio.get_running_loop()
        self._checkpoint = loop.run_in_executor(self._executor(), _checkpoint, engine)
        self._checkpoint.add_done_callback(_log_checkpoint_failure)

    async def close(self) -> None:
        """Commit what is queued and stop the writer (a later write starts it again)."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            self._closing = True
            self._wakeup.set()
            await task
        self._closing = False
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
            self._checkpoint = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        for sync in (self.sync_engine, self.nowait_engine):
            if sync is not None:
                sync.dispose()
