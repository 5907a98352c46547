"""The store on real SQLite and real PostgreSQL: idempotency, leases, delivery, kv, quota."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from stemhub._store import LEASE_CHUNK, SCHEMA_HEAD, Store
from stemhub.migrations import downgrade
from stemhub.models import Job, JobRequest, JobStatus, Origin, Source, SourceKind, Stage
from stemhub.testing import patience


def make_job(key: str | None = None, user: str = "u1") -> Job:
    request = JobRequest(
        source=Source(kind=SourceKind.URL, url="https://example.com/song.mp3"),
        origin=Origin(platform="discord", user_id=user),
        idempotency_key=key,
    )
    return Job(request=request)


async def test_job_round_trip_keeps_every_field(store: Store) -> None:
    job = make_job()
    job.stage = Stage.SEPARATE
    job.remote_id = "remote-1"
    job.backend = "stemsplit"
    await store.insert_job(job)
    job.status = JobStatus.RUNNING
    job.progress = 42.5
    await store.save_job(job)
    loaded = await store.get_job(job.id)
    assert loaded is not None
    assert loaded.status is JobStatus.RUNNING
    assert loaded.progress == 42.5
    assert loaded.request.origin.user_id == "u1"
    assert (await store.get_job_by_remote_id("stemsplit", "remote-1")) == loaded


async def test_idempotency_key_returns_the_first_job(store: Store) -> None:
    first = await store.insert_job(make_job("same-key"))
    second = await store.insert_job(make_job("same-key"))
    assert second.id == first.id
    assert await store.count_jobs() == 1


async def test_lease_is_exclusive_until_it_lapses(store: Store) -> None:
    job = await store.insert_job(make_job())
    assert await store.claim_job(job.id, "hub-a", lease_s=0.3)
    assert not await store.claim_job(job.id, "hub-b", lease_s=0.3)
    assert job.id not in await store.claimable_job_ids("hub-b")
    await asyncio.sleep(0.4)
    assert job.id in await store.claimable_job_ids("hub-b")
    assert await store.claim_job(job.id, "hub-b", lease_s=30)


async def test_kv_add_is_first_writer_wins_and_expires(store: Store) -> None:
    assert await store.kv_add("events", "Ev1", {"n": 1}, ttl_s=0.2)
    assert not await store.kv_add("events", "Ev1", {"n": 2})
    assert await store.kv_get("events", "Ev1") == {"n": 1}
    await asyncio.sleep(0.3)
    assert await store.kv_get("events", "Ev1") is None
    assert await store.kv_add("events", "Ev1", {"n": 3})
    await store.kv_put("cfg", "a", [1, 2])
    await store.kv_put("cfg", "a", [3])
    assert await store.kv_items("cfg") == [("a", [3])]
    assert await store.kv_delete("cfg", "a")


async def test_quota_sliding_window_refuses_and_tells_the_wait(store: Store) -> None:
    assert await store.take_quota("user", "discord:1", limit=2, window_s=0.5) is None
    assert await store.take_quota("user", "discord:1", limit=2, window_s=0.5) is None
    wait = await store.take_quota("user", "discord:1", limit=2, window_s=0.5)
    assert wait is not None and 0 < wait <= 0.5
    assert await store.take_quota("user", "discord:2", limit=2, window_s=0.5) is None
    await asyncio.sleep(wait + 0.05)
    assert await store.take_quota("user", "discord:1", limit=2, window_s=0.5) is None


async def test_quota_holds_under_concurrent_takers(store: Store) -> None:
    results = await asyncio.gather(
        *(store.take_quota("guild", "g", limit=5, window_s=60) for _ in range(20))
    )
    assert sum(r is None for r in results) == 5


async def test_upgrade_from_older_schema_keeps_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = await Store.open(url)
    job = await store.insert_job(make_job())
    async with store.engine.begin() as conn:
        await conn.run_sync(downgrade, "base")
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    assert "jobs" not in tables
    await store.close()

    store = await Store.open(url)
    await store.insert_job(job)
    await store.close()
    reopened = await Store.open(url)
    assert (await reopened.get_job(job.id)) is not None
    await reopened.close()


async def test_renewal_keeps_only_the_owners_leases_across_chunks(store: Store) -> None:
    mine = [make_job() for _ in range(LEASE_CHUNK * 2 + 7)]
    theirs = make_job()
    await asyncio.gather(*(store.insert_job(job, owner="hub-a", lease_s=0.5) for job in mine))
    await store.insert_job(theirs, owner="hub-b", lease_s=0.5)
    await store.renew_leases([job.id for job in [*mine, theirs]], "hub-a", lease_s=60)
    await asyncio.sleep(0.7)
    claimable = set(await store.claimable_job_ids("hub-c", limit=10_000))
    assert claimable == {theirs.id}


@pytest.mark.postgres
async def test_processes_opening_a_fresh_database_at_once_all_migrate_it(
    postgres_url: str,
) -> None:
    """Hubs and workers started together: one migrates, the others wait and find it done."""
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(4)))
    try:
        job = await stores[0].insert_job(make_job())
        assert all([await s.get_job(job.id) is not None for s in stores])
    finally:
        for opened in stores:
            await opened.close()


async def test_stores_opening_fresh_sqlite_files_at_once_all_migrate_them(tmp_path: Path) -> None:
    """One file opened four times, and four files at once, in one process: Alembic keeps
    the running migration in globals, so upgrades take turns; each file ends migrated."""
    same = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    urls = [same] * 4 + [f"sqlite+aiosqlite:///{tmp_path / f'other{n}.db'}" for n in range(4)]
    stores = await asyncio.gather(*(Store.open(url) for url in urls))
    try:
        job = await stores[0].insert_job(make_job())
        assert all([await s.get_job(job.id) is not None for s in stores[:4]])
        assert all([await s.schema_revision() == SCHEMA_HEAD for s in stores])
    finally:
        for opened in stores:
            await opened.close()


@pytest.mark.slow
def test_processes_opening_a_fresh_sqlite_file_at_once_all_migrate_it(tmp_path: Path) -> None:
    """Hubs and workers started together on one SQLite file: the lock file orders them.

    Each process imports the store, says so, and when the test says go opens eight fresh
    files one after the other, so the opens really race, eight times."""
    go = tmp_path / "go"
    script = (
        "import asyncio, os, sys, time\n"
        "from stemhub._store import Store\n"
        "print('ready', flush=True)\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    time.sleep(0.001)\n"
        "async def main():\n"
        "    for n in range(8):\n"
        "        store = await Store.open(f'{sys.argv[1]}{n}.db')\n"
        "        print(await store.schema_revision())\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"sqlite+aiosqlite:///{tmp_path}/fresh", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    results = [process.communicate(timeout=patience(60)) for process in processes]
    outcomes = [(p.returncode, out.split()) for p, (out, _) in zip(processes, results, strict=True)]
    assert outcomes == [(0, [SCHEMA_HEAD] * 8)] * 6, [err[-600:] for _, err in results]


@pytest.mark.slow
async def test_state_and_quota_writes_wait_out_a_lock_held_past_the_busy_timeout(
    tmp_path: Path,
) -> None:
    """Another process holds SQLite's write lock longer than the busy timeout (10 s): the
    writes are refused once ("database is locked"), then go again and land."""
    import sqlite3
    import threading

    path = tmp_path / "busy.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(60)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        await asyncio.to_thread(locked.wait, 10)
        loop = asyncio.get_running_loop()
        loop.call_later(14.0, release.set)  # past one busy timeout, within the retries
        await asyncio.gather(
            store.kv_put("test", "a", {"n": 1}),
            store.kv_add("test", "b", 2),
            store.take_quota("test", "someone", limit=5, window_s=60),
        )
        assert await store.kv_get("test", "a") == {"n": 1}
        assert await store.kv_get("test", "b") == 2
        assert await store.kv_delete("test", "a")
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
        await store.close()
