"""A worker's run lease, with the race that decides it made to happen every time.

A redelivered task (Redis's visibility timeout) waits while another worker holds the run
lease. That worker records its outcome and then releases the lease; when both land between
the waiting worker's read of the outcome and its next claim, the claim succeeds. The
worker must read the outcome again before running: seen in CI before it did, a task ran
twice (the second run's outcome was dropped, but the work was done twice).

No broker here: the worker runtime is driven directly with the message a broker would
hand it, against a SQLite job database shared with a hub in the test's process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stemhub.cluster.records import NAMESPACE, Outcome, Records
from stemhub.cluster.tasks import SeparateMessage
from stemhub.cluster.worker import WorkerRuntime
from stemhub.models import JobStatus
from stemhub.plugin.api import KeyValue
from stemhub.testing import FakeBackendControls, FakeBackendPlugin, make_settings
from tests.scale._cluster import cluster_hub, eventually, file_request

TASK_ID = "task-under-race"


class FinishesOnFirstLook:
    """The job database's ``cluster`` records, where the other worker's run ends at the
    worst moment: right after this worker first reads the outcome (and finds none), the
    other worker records its outcome and releases its lease, in that order."""

    def __init__(self, inner: KeyValue, other: str) -> None:
        self.inner = inner
        self.namespace = inner.namespace
        self.other = other
        self.ended = False

    async def get(self, key: str) -> Any | None:
        value = await self.inner.get(key)
        if key == f"outcome:{TASK_ID}" and not self.ended:
            self.ended = True
            other = Records(self.inner)
            await other.record_outcome(TASK_ID, Outcome(worker=self.other, cancelled=True))
            await other.release_run(TASK_ID)
        return value

    async def put(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        await self.inner.put(key, value, ttl_s=ttl_s)

    async def add(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        return await self.inner.add(key, value, ttl_s=ttl_s)

    async def delete(self, key: str) -> bool:
        return await self.inner.delete(key)

    async def items(self, *, limit: int = 1000) -> list[tuple[str, Any]]:
        return await self.inner.items(limit=limit)


async def test_a_run_that_ends_just_before_the_claim_is_not_run_again(
    tmp_path: Path, stemhub_audio_file: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    # the hub's own job runs for a long time: the job stays unfinished during the test
    hub, controls, _events = cluster_hub(
        tmp_path / "hub", database_url=database_url, broker_url=None
    )
    controls.delay_s = 600.0
    async with hub:
        job = await hub.submit(file_request(stemhub_audio_file))

        async def running() -> bool:
            current = await hub.get_job(job.id)
            return current is not None and current.status is JobStatus.RUNNING

        await eventually(running, "the job runs")
        settings = make_settings(tmp_path / "worker", database_url=database_url)
        fake = FakeBackendPlugin(FakeBackendControls(delay_s=0.0))
        runtime = WorkerRuntime(settings, name="second", extra_plugins=[("fake", fake)])
        await asyncio.to_thread(runtime.start)
        try:
            plain = Records(hub.kv(NAMESPACE))
            assert await plain.claim_run(TASK_ID, "first", 60.0)
            runtime.records = Records(FinishesOnFirstLook(runtime.hub.kv(NAMESPACE), "first"))
            message = SeparateMessage(task_id=TASK_ID, job_id=job.id, backend="fake")
            await asyncio.to_thread(runtime.run, message)
            assert await plain.deliveries(TASK_ID) == ["second"]
            # the lease was free when "second" claimed it, but the outcome was there
            assert await plain.runs(TASK_ID) == []
            outcome = await plain.outcome(TASK_ID)
            assert outcome is not None and outcome.worker == "first"
        finally:
            await asyncio.to_thread(runtime.stop)
