"""The store's group-commit writer at its edges, on real SQLite and real PostgreSQL.

Many job writes share one transaction (:class:`stemhub._job_writer.JobWriter`); these tests
check what a batch must not get wrong: a write that breaks a constraint fails alone, a
write whose caller gave up is dropped, a held write lock delays writes without losing
them, writes of finished jobs overtake the queue, and closing commits what is queued.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event

from stemhub import _job_writer as job_writer
from stemhub._store import Store
from stemhub.models import Job, JobRequest, JobStatus, Origin, Source, SourceKind, Stage
from stemhub.testing import patience


def make_job(key: str | None = None) -> Job:
    request = JobRequest(
        source=Source(kind=SourceKind.URL, url="https://example.com/song.mp3"),
        origin=Origin(platform="discord", user_id="u1"),
        idempotency_key=key,
    )
    return Job(request=request)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[tuple[Store, Path]]:
    path = tmp_path / "jobs.db"
    opened = await Store.open(f"sqlite:///{path}")
    try:
        yield opened, path
    finally:
        await opened.close()


@contextmanager
def write_lock_held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (another hub, a CLI) holds the database's write lock."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
    finally:
        if other.in_transaction:
            other.execute("COMMIT")
        other.close()


async def test_a_duplicate_key_in_a_batch_fails_alone(store: Store) -> None:
    keyed = [make_job("same-key") for _ in range(10)]
    others = [make_job(f"key-{i}") for i in range(30)] + [make_job() for _ in range(10)]
    mixed = [job for pair in zip(keyed, others, strict=False) for job in pair] + others[10:]
    stored = await asyncio.gather(*(store.insert_job(job) for job in mixed))
    keyed_ids = {job.id for job, sent in zip(stored, mixed, strict=True) if sent in keyed}
    assert len(keyed_ids) == 1
    assert keyed_ids <= {job.id for job in keyed}
    for sent, got in zip(mixed, stored, strict=True):
        if sent not in keyed:
            assert got.id == sent.id
            assert await store.get_job(sent.id) is not None
    assert await store.count_jobs() == 1 + len(others)


@contextmanager
def threads_writing_jobs(store: Store) -> Iterator[set[int]]:
    """The threads on which the store's writer ran job-table writes meanwhile."""
    seen: set[int] = set()

    def record(*_args: object, **_kwargs: object) -> None:
        seen.add(threading.get_ident())

    engines = [store.writer.sync_engine, store.writer.nowait_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def test_with_the_lock_free_a_batch_commits_on_the_loop_thread(
    sqlite_store: tuple[Store, Path],
) -> None:
    store, _path = sqlite_store
    jobs = [await store.insert_job(make_job()) for _ in range(20)]
    for job in jobs:
        job.status = JobStatus.RUNNING
    with threads_writing_jobs(store) as threads:
        await asyncio.gather(*(store.save_job(job) for job in jobs))
    assert threads == {threading.get_ident()}
    for job in jobs:
        assert (await store.get_job(job.id) or job).status is JobStatus.RUNNING


async def test_a_held_write_lock_delays_writes_without_losing_them(
    sqlite_store: tuple[Store, Path],
) -> None:
    store, path = sqlite_store
    jobs = [await store.insert_job(make_job()) for _ in range(20)]
    for job in jobs:
        job.status = JobStatus.RUNNING
    with write_lock_held(path) as other:
        released_at = [0.0]

        def release() -> None:
            released_at[0] = time.monotonic()
            other.execute("COMMIT")

        asyncio.get_running_loop().call_later(0.3, release)
        with threads_writing_jobs(store) as threads:
            await asyncio.gather(*(store.save_job(job) for job in jobs))
        saved_at = time.monotonic()
    assert released_at[0] > 0
    assert saved_at >= released_at[0]
    # the loop did not wait for the lock: the writer's own thread did
    assert threads - {threading.get_ident()}
    for job in jobs:
        loaded = await store.get_job(job.id)
        assert loaded is not None
        assert loaded.status is JobStatus.RUNNING


async def test_a_write_whose_caller_gave_up_is_dropped(sqlite_store: tuple[Store, Path]) -> None:
    store, path = sqlite_store
    blocker, dropped, kept = [await store.insert_job(make_job()) for _ in range(3)]
    for job in (blocker, dropped, kept):
        job.progress = 50.0
    with write_lock_held(path) as other:
        first = asyncio.create_task(store.save_job(blocker))
        await asyncio.sleep(0.05)  # its batch now waits for the lock
        abandoned = asyncio.create_task(store.save_job(dropped))
        later = asyncio.create_task(store.save_job(kept))
        await asyncio.sleep(0.05)
        abandoned.cancel()
        other.execute("COMMIT")
        await asyncio.gather(first, later)
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert (await store.get_job(blocker.id) or blocker).progress == 50.0
    assert (await store.get_job(kept.id) or kept).progress == 50.0
    assert (await store.get_job(dropped.id) or dropped).progress == 0.0


async def test_finished_jobs_overtake_queued_writes(sqlite_store: tuple[Store, Path]) -> None:
    store, path = sqlite_store
    queued = [await store.insert_job(make_job()) for _ in range(300)]
    finished = await store.insert_job(make_job())
    order: list[str] = []

    async def save(job: Job) -> None:
        await store.save_job(job)
        order.append(job.id)

    with write_lock_held(path) as other:
        head = asyncio.create_task(save(queued[0]))
        await asyncio.sleep(0.05)  # the first batch waits for the lock
        rest = [asyncio.create_task(save(job)) for job in queued[1:]]
        await asyncio.sleep(0)
        finished.status, finished.stage = JobStatus.COMPLETED, Stage.DELIVER
        urgent = asyncio.create_task(save(finished))
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
        await asyncio.gather(head, urgent, *rest)
    # the blocked batch goes first; the finished job's write is in the very next one,
    # ahead of the 299 that were queued before it
    assert order.index(finished.id) < order.index(queued[1].id)
    assert order.index(finished.id) < len(order) // 2


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = await Store.open(url)
    jobs = [await store.insert_job(make_job()) for _ in range(50)]
    for job in jobs:
        job.status = JobStatus.RUNNING
    saves = [asyncio.create_task(store.save_job(job)) for job in jobs]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*saves)
    reopened = await Store.open(url)
    try:
        statuses = {(await reopened.get_job(job.id) or job).status for job in jobs}
    finally:
        await reopened.close()
    assert statuses == {JobStatus.RUNNING}


async def test_writes_after_close_start_the_writer_again(store: Store) -> None:
    job = await store.insert_job(make_job())
    await store.writer.close()
    job.progress = 75.0
    await store.save_job(job)
    assert (await store.get_job(job.id) or job).progress == 75.0


async def test_the_write_ahead_log_is_folded_back_while_jobs_are_written(
    sqlite_store: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the writer's connections never checkpoint on their own (their commits run on the
    # event loop); without its periodic checkpoint the log would hold every write
    monkeypatch.setattr(job_writer, "CHECKPOINT_EVERY_S", 0.02)
    store, path = sqlite_store
    wal = path.with_name(path.name + "-wal")
    written = 0
    writer = store.writer
    for _ in range(40):
        jobs = [make_job() for _ in range(25)]
        for job in jobs:
            job.request.metadata = {"notes": "x" * 4000}
        before = writer._checkpointed_at
        await asyncio.gather(*(store.insert_job(job) for job in jobs))
        written += sum(len(job.model_dump_json()) for job in jobs)
        # the writer checkpoints on its thread; on a loaded machine that thread runs late,
        # so wait (bounded) for the checkpoint this batch started instead of a fixed pause
        for _ in range(int(patience(0.5) / 0.01)):
            running = writer._checkpoint
            if writer._checkpointed_at > before and (running is None or running.done()):
                break
            await asyncio.sleep(0.01)
    assert await store.count_jobs() == 1000
    assert written > 4_000_000
    assert wal.stat().st_size < written / 4
