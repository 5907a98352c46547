"""Job persistence on SQLAlchemy 2 async: SQLite by default, PostgreSQL at scale.

A job row keeps the whole :class:`~stemhub.models.Job` as JSON plus the columns queries
need (status, platform, idempotency key, lease). Every transition is one short write
transaction, so a hub killed at any point finds the last completed step on restart.

Leases make several hub processes safe on one database: a hub claims a job before it
works on it and renews the lease while it does; a job whose lease lapsed (its hub died)
may be claimed by any hub.

The job table's writes are group-committed (:class:`~stemhub._job_writer.JobWriter`):
thousands of jobs in flight would otherwise each pay for a transaction of their own, per
transition.

The ``kv`` table gives plugins durable state without migrations of their own (delivery
cursors, event dedupe, API keys), and ``quota_hits`` holds quota counters so limits
survive restarts and span instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from stemhub._job_writer import BUSY_TIMEOUT_MS, JobWriter
from stemhub.errors import StaleJob
from stemhub.models import TERMINAL_STATUSES, Job, JobStatus, Stage, utcnow
from stemhub.retry import RetryPolicy

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("platform", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.String(128), nullable=True),
    sa.Column("api_key_id", sa.String(64), nullable=True),
    sa.Column("idempotency_key", sa.String(320), nullable=True, unique=True),
    sa.Column("backend", sa.String(64), nullable=True),
    sa.Column("remote_id", sa.String(255), nullable=True, index=True),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
)

kv = sa.Table(
    "kv",
    metadata,
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

quota_hits = sa.Table(
    "quota_hits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_quota_hits_scope_subject_at", "scope", "subject", "at"),
)

LEASE_CHUNK = 500

MIGRATION_LOCK = 0x5374656D687562  # "Stemhub": the advisory lock migrations hold
# Alembic keeps its running migration in module globals: one upgrade at a time per process
_UPGRADING = threading.Lock()


@contextlib.asynccontextmanager
async def _migration_turn(database: Path | None) -> AsyncIterator[None]:
    """Hold this process's migration turn and, for a SQLite file, its lock file.

    SQLite has no advisory lock, so hubs and workers opening one fresh file together each
    created the tables and all but one failed ("table alembic_version already exists").
    ``flock`` on ``<file>.migrate-lock`` orders them across processes (and across stores
    of one process: each open of the file locks on its own). Both locks are polled, so a
    cancelled open never leaves one held.
    """
    # polled: the lock is shared by every thread and event loop of the process
    while not _UPGRADING.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    try:
        if database is None:
            yield
            return
        with database.with_name(database.name + ".migrate-lock").open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.02)
            yield
    finally:
        _UPGRADING.release()


SCHEMA_HEAD = "0003"
"""The newest revision under ``stemhub/migrations/versions`` (a test holds it to
Alembic's head): a database at it needs no migration."""

log = logging.getLogger(__name__)

_TRANSIENT = RetryPolicy(attempts=6, first_delay_s=0.2, max_delay_s=5.0)
"""Writes refused by a busy database (SQLite's lock past its timeout) go again."""

T = TypeVar("T")


async def _while_busy(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a write, again while the database answers that it is busy.

    A lock held past the busy timeout on a loaded machine rolls the transaction back, so
    nothing was written and the same write may go again (the one retry policy's pace).
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except OperationalError as error:
            failures += 1
            if _TRANSIENT.gives_up(failures):
                raise
            log.warning("%s: store busy (%s); writing again", what, error.orig)
            await asyncio.sleep(_TRANSIENT.delay(failures))


# delivery ended without reaching the person (Job.undelivered)
_UNDELIVERED = sa.and_(jobs.c.stage == Stage.DONE.value, jobs.c.delivered_at.is_(None))

UNFINISHED = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]

# Built once so SQLAlchemy's statement cache key is computed once, not per write; the
# ``b_`` prefix keeps bind names apart from the column names they would shadow.
_INSERT_JOB = jobs.insert()
# every write names the version it read: a stale copy changes nothing (row count 0)
_UPDATE_JOB = jobs.update().where(
    jobs.c.id == sa.bindparam("b_id"), jobs.c.version == sa.bindparam("b_version")
)
# a job done with delivery is final: the lease goes with the same write
_FINISH_JOB = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"), jobs.c.version == sa.bindparam("b_version"))
    .values(owner=None, lease_until=None)
)
# never a job whose delivery ended, never one whose lease another hub still holds
_CLAIM_JOB = (
    jobs.update()
    .where(
        jobs.c.id == sa.bindparam("b_id"),
        jobs.c.stage != Stage.DONE.value,
        sa.or_(
            jobs.c.owner.is_(None),
            jobs.c.owner == sa.bindparam("b_owner"),
            jobs.c.lease_until < sa.bindparam("b_now"),
        ),
    )
    # a claim is a write: a hub still holding an older copy (its lease lapsed while it
    # worked) is refused at its next write instead of working on beside the new owner
    .values(
        owner=sa.bindparam("b_owner"),
        lease_until=sa.bindparam("b_until"),
        version=jobs.c.version + 1,
    )
)
_RENEW_LEASES = (
    jobs.update()
    .where(
        jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)),
        jobs.c.owner == sa.bindparam("b_owner"),
    )
    .values(lease_until=sa.bindparam("b_until"))
)
_RELEASE_JOB = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"), jobs.c.owner == sa.bindparam("b_owner"))
    .values(owner=None, lease_until=None)
)


def _finishing(job: Job) -> bool:
    """Past its backend: someone is waiting for this job's delivery right now."""
    return job.stage in (Stage.DELIVER, Stage.DONE)


def _sqlite_pragmas(
    busy_timeout_ms: int = BUSY_TIMEOUT_MS, *, autocheckpoint: bool = True
) -> Callable[[Any, Any], None]:
    """A connect listener: WAL, the busy timeout, and whether commits may checkpoint.

    The job writer's connections run with ``autocheckpoint`` off (it commits on the event
    loop; checkpoints are its thread's job), and its on-loop ones with a zero busy
    timeout (a held lock sends the batch to that thread).
    """

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return apply


def _job_of(row: sa.Row[Any, Any]) -> Job:
    """A job from its (data, version) row: the column is the version, a claim bumps it."""
    job = Job.model_validate_json(row[0])
    job.version = int(row[1])
    return job


def normalise_url(url: str) -> str:
    """Accept plain driver URLs (``postgresql://``, ``sqlite:///``) and pick async drivers."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


class Store:
    def __init__(
        self,
        engine: AsyncEngine,
        sync_engine: Engine | None = None,
        nowait_engine: Engine | None = None,
        *,
        path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.path = path
        """The SQLite file (None: PostgreSQL or an in-memory database)."""
        self.writer = JobWriter(engine, sync_engine, nowait_engine)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        url = normalise_url(url)
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args={"timeout": 30})
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas())
            sync_engine: Engine | None = None
            nowait_engine: Engine | None = None
            if path and path != ":memory:":
                sync_url = make_url(url).set(drivername="sqlite")
                sync_engine = sa.create_engine(sync_url, connect_args={"timeout": 30})
                nowait_engine = sa.create_engine(sync_url, connect_args={"timeout": 0})
                event.listen(sync_engine, "connect", _sqlite_pragmas(autocheckpoint=False))
                event.listen(nowait_engine, "connect", _sqlite_pragmas(0, autocheckpoint=False))
        else:
            engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            sync_engine = nowait_engine = None
        file = Path(path) if url.startswith("sqlite") and path and path != ":memory:" else None
        store = cls(engine, sync_engine, nowait_engine, path=file)
        if migrate:
            await store.migrate()
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (batch mode on SQLite).

        A database already at :data:`SCHEMA_HEAD` is left alone without loading Alembic
        (a third of a second of CPU that every command opening the store would pay).
        """
        if await self.schema_revision() == SCHEMA_HEAD:
            return
        from stemhub.migrations import upgrade

        async with _migration_turn(self.path):
            if self.path is not None and await self.schema_revision() == SCHEMA_HEAD:
                return  # another hub migrated the file while this one waited
            async with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # several processes opening a fresh database at once would each try
                    # to create the tables; one migrates, the others wait and find it done
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                await conn.run_sync(upgrade)

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at, read without Alembic (None: no schema)."""
        try:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                ).first()
        except DBAPIError:  # no table yet; a database out of reach fails again in migrate()
            return None
        return str(row[0]) if row is not None else None

    async def close(self) -> None:
        await self.writer.close()
        await self.engine.dispose()

    # jobs

    @staticmethod
    def _row(job: Job) -> dict[str, Any]:
        return {
            "status": job.status.value,
            "stage": job.stage.value,
            "platform": job.origin.platform,
            "user_id": job.origin.user_id,
            "api_key_id": job.origin.api_key_id,
            "backend": job.backend,
            "remote_id": job.remote_id,
            "updated_at": job.updated_at,
            "delivered_at": job.delivered_at,
            "data": job.model_dump_json(),
            "version": job.version,
        }

    async def insert_job(self, job: Job, *, owner: str | None = None, lease_s: float = 0.0) -> Job:
        """Persist a new job; with an idempotency key already used, return that job.

        With ``owner`` the job is stored already leased to it for ``lease_s`` seconds
        (what :meth:`claim_job` would do next, without a second write).
        """
        values = self._row(job) | {
            "id": job.id,
            "created_at": job.created_at,
            "idempotency_key": job.request.idempotency_key,
            "owner": owner,
            "lease_until": time.time() + lease_s if owner is not None else None,
        }
        try:
            await self.writer.write(_INSERT_JOB, values, batchable=True)
        except IntegrityError:
            if job.request.idempotency_key is None:
                raise
            existing = await self.get_job_by_idempotency_key(job.request.idempotency_key)
            if existing is None:
                raise
            return existing
        return job

    async def save_job(self, job: Job, *, release: bool = False) -> Job:
        """Write the job's current state, guarded by the version this copy was read at.

        The write bumps ``job.version``; when the stored row is at another version
        (someone wrote a newer state meanwhile) nothing changes and :class:`StaleJob` is
        raised. ``release`` drops the lease in the same write (delivery ended).
        """
        read_at = job.version
        job.version = read_at + 1
        job.updated_at = utcnow()
        params = self._row(job) | {"b_id": job.id, "b_version": read_at}
        statement = _FINISH_JOB if release else _UPDATE_JOB
        try:
            written = await _while_busy(
                f"job {job.id}",
                lambda: self.writer.write(statement, params, urgent=_finishing(job)),
            )
        except BaseException:
            job.version = read_at
            raise
        if written != 1:
            job.version = read_at
            raise StaleJob(job.id, read_at)
        return job

    async def _one_job(self, where: sa.ColumnElement[bool]) -> Job | None:
        query = sa.select(jobs.c.data, jobs.c.version).where(where)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _job_of(row)

    async def get_job(self, job_id: str) -> Job | None:
        return await self._one_job(jobs.c.id == job_id)

    async def get_job_by_idempotency_key(self, key: str) -> Job | None:
        return await self._one_job(jobs.c.idempotency_key == key)

    async def get_job_by_remote_id(self, backend: str, remote_id: str) -> Job | None:
        return await self._one_job(
            sa.and_(jobs.c.backend == backend, jobs.c.remote_id == remote_id)
        )

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        platform: str | None = None,
        user_id: str | None = None,
        api_key_id: str | None = None,
        undelivered: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Job]:
        query = sa.select(jobs.c.data, jobs.c.version).order_by(jobs.c.created_at.desc(), jobs.c.id)
        if undelivered:
            query = query.where(_UNDELIVERED)
        if statuses:
            query = query.where(jobs.c.status.in_([s.value for s in statuses]))
        if platform is not None:
            query = query.where(jobs.c.platform == platform)
        if user_id is not None:
            query = query.where(jobs.c.user_id == user_id)
        if api_key_id is not None:
            query = query.where(jobs.c.api_key_id == api_key_id)
        query = query.limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_job_of(row) for row in rows]

    async def count_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        api_key_id: str | None = None,
        undelivered: bool = False,
    ) -> int:
        query = sa.select(sa.func.count()).select_from(jobs)
        if undelivered:
            query = query.where(_UNDELIVERED)
        if statuses:
            query = query.where(jobs.c.status.in_([s.value for s in statuses]))
        if api_key_id is not None:
            query = query.where(jobs.c.api_key_id == api_key_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def count_by_status(self) -> dict[str, int]:
        query = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
        async with self.engine.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    async def claim_job(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Take the lease of a job nobody else holds; True when this owner holds it now."""
        now = time.time()
        params = {"b_id": job_id, "b_owner": owner, "b_now": now, "b_until": now + lease_s}
        return await self.writer.write(_CLAIM_JOB, params) == 1

    async def renew_leases(self, job_ids: Sequence[str], owner: str, lease_s: float) -> None:
        """Extend this owner's leases of ``job_ids``.

        A chunk per write (bound parameters are limited, SQLite: 32766), through the job
        writer, so a finished job's write never waits behind one long transaction
        renewing thousands of leases.
        """
        ids = list(job_ids)
        until = time.time() + lease_s
        for start in range(0, len(ids), LEASE_CHUNK):
            chunk = ids[start : start + LEASE_CHUNK]
            params = {"b_ids": chunk, "b_owner": owner, "b_until": until}
            # ahead of queued job writes: a lease that lapses under load hands a live
            # hub's jobs to another hub
            await self.writer.write(_RENEW_LEASES, params, urgent=True)

    async def release_job(self, job_id: str, owner: str) -> None:
        await self.writer.write(_RELEASE_JOB, {"b_id": job_id, "b_owner": owner}, batchable=True)

    async def claimable_job_ids(self, owner: str, limit: int = 1000) -> list[str]:
        """Unfinished (or delivered-pending) jobs whose lease is free or lapsed."""
        now = time.time()
        query = (
            sa.select(jobs.c.id)
            .where(
                sa.or_(
                    jobs.c.status.in_(UNFINISHED),
                    sa.and_(
                        jobs.c.status.in_([s.value for s in TERMINAL_STATUSES]),
                        jobs.c.stage == "deliver",
                    ),
                ),
                sa.or_(jobs.c.owner.is_(None), jobs.c.owner == owner, jobs.c.lease_until < now),
            )
            .order_by(jobs.c.created_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [row[0] for row in (await conn.execute(query)).all()]

    async def claim_and_read(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        """Claim a job's lease and read it under the claim; None when it is not claimable.

        The copy returned is read after the claim committed, so it is at least as new as
        anything the previous owner wrote before its lease lapsed; a write the previous
        owner still makes from an older copy is refused by the version guard.
        """
        if not await self.claim_job(job_id, owner, lease_s):
            return None
        job = await self.get_job(job_id)
        if job is None or job.stage is Stage.DONE:
            await self.release_job(job_id, owner)
            return None
        return job

    async def jobs_past_retention(self, cutoff: datetime, *, limit: int = 500) -> list[Job]:
        """Delivered, completed jobs last changed before ``cutoff`` (their stems may go)."""
        query = (
            sa.select(jobs.c.data, jobs.c.version)
            .where(
                jobs.c.status == JobStatus.COMPLETED.value,
                jobs.c.stage == Stage.DONE.value,
                jobs.c.delivered_at.is_not(None),
                jobs.c.updated_at < cutoff,
            )
            .order_by(jobs.c.updated_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_job_of(row) for row in rows]

    # key-value state for plugins

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        query = sa.select(kv.c.value, kv.c.expires_at).where(
            kv.c.namespace == namespace, kv.c.key == key
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or (row[1] is not None and row[1] < time.time()):
            return None
        return json.loads(row[0])

    async def kv_put(
        self, namespace: str, key: str, value: Any, *, ttl_s: float | None = None
    ) -> None:
        now = time.time()
        values = {
            "value": json.dumps(value),
            "expires_at": now + ttl_s if ttl_s is not None else None,
            "updated_at": now,
        }

        async def put() -> None:
            async with self.engine.begin() as conn:
                updated = await conn.execute(
                    kv.update().where(kv.c.namespace == namespace, kv.c.key == key).values(**values)
                )
                if updated.rowcount == 0:
                    await conn.execute(kv.insert().values(namespace=namespace, key=key, **values))

        await _while_busy(f"{namespace} state", put)

    async def kv_add(
        self, namespace: str, key: str, value: Any, *, ttl_s: float | None = None
    ) -> bool:
        """Insert only if absent (or expired): True for the first caller across all hubs."""
        now = time.time()
        row = {
            "namespace": namespace,
            "key": key,
            "value": json.dumps(value),
            "expires_at": now + ttl_s if ttl_s is not None else None,
            "updated_at": now,
        }

        async def add() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(
                    kv.delete().where(
                        kv.c.namespace == namespace, kv.c.key == key, kv.c.expires_at < now
                    )
                )
                await conn.execute(kv.insert().values(**row))

        try:
            await _while_busy(f"{namespace} state", add)
        except IntegrityError:
            return False
        return True

    async def kv_delete(self, namespace: str, key: str) -> bool:
        query = kv.delete().where(kv.c.namespace == namespace, kv.c.key == key)

        async def delete() -> bool:
            async with self.engine.begin() as conn:
                return (await conn.execute(query)).rowcount > 0

        return await _while_busy(f"{namespace} state", delete)

    async def kv_items(self, namespace: str, *, limit: int = 1000) -> list[tuple[str, Any]]:
        now = time.time()
        query = (
            sa.select(kv.c.key, kv.c.value)
            .where(
                kv.c.namespace == namespace,
                sa.or_(kv.c.expires_at.is_(None), kv.c.expires_at >= now),
            )
            .order_by(kv.c.key)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(k, json.loads(v)) for k, v in (await conn.execute(query)).all()]

    # quotas

    async def take_quota(
        self, scope: str, subject: str, *, limit: int, window_s: float
    ) -> float | None:
        """Count one use against ``limit`` per ``window_s``; the wait in seconds if over.

        A sliding log: the refused request is not counted, so retrying after the wait
        succeeds. Rows older than the window are pruned in the same transaction.
        """
        return await _while_busy(
            f"{scope} quota", lambda: self._take_quota(scope, subject, limit, window_s)
        )

    async def _take_quota(
        self, scope: str, subject: str, limit: int, window_s: float
    ) -> float | None:
        now = time.time()
        since = now - window_s
        where = sa.and_(quota_hits.c.scope == scope, quota_hits.c.subject == subject)
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # serialise counters of one subject across hubs; SQLite's writer lock does this
                lock_key = sa.func.hashtext(f"{scope}:{subject}")
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key)))
            await conn.execute(quota_hits.delete().where(where, quota_hits.c.at < since))
            recent = (
                await conn.execute(
                    sa.select(quota_hits.c.at)
                    .where(where, quota_hits.c.at >= since)
                    .order_by(quota_hits.c.at)
                )
            ).all()
            if len(recent) >= limit:
                oldest_that_matters = float(recent[len(recent) - limit][0])
                return max(0.001, oldest_that_matters + window_s - now)
            await conn.execute(quota_hits.insert().values(scope=scope, subject=subject, at=now))
        return None


__all__ = [
    "JobWriter",
    "Store",
    "jobs",
    "kv",
    "metadata",
    "normalise_url",
    "quota_hits",
]
