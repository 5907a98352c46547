"""A hub in the test's process beside worker processes, and waiting on conditions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from stemhub.cluster.records import Records
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, Origin, Source, SourceKind
from stemhub.plugin.manager import get_plugin_manager
from stemhub.plugin.marker import hookimpl
from stemhub.testing import FakeBackendControls, FakeBackendPlugin, make_settings

T = TypeVar("T")

GUARD_S = 300.0
"""Only a guard against a hang: every wait below waits on a condition."""


class EventCounter:
    """Counts the lifecycle events the hub's observers see, per job."""

    def __init__(self) -> None:
        self.completed: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    @hookimpl
    def stemhub_job_completed(self, job: Job) -> None:
        self.completed[job.id] += 1

    @hookimpl
    def stemhub_job_delivered(self, job: Job) -> None:
        self.delivered[job.id] += 1

    @hookimpl
    def stemhub_job_failed(self, job: Job) -> None:
        self.failed[job.id] += 1


def cluster_hub(
    tmp: Path,
    *,
    database_url: str,
    broker_url: str | None,
    extra_settings: dict[str, Any] | None = None,
    plugins: list[tuple[str, object]] | None = None,
) -> tuple[Hub, FakeBackendControls, EventCounter]:
    controls = FakeBackendControls()
    counter = EventCounter()
    values: dict[str, Any] = {"default_backend": "fake", **(extra_settings or {})}
    settings = make_settings(tmp, database_url=database_url, broker_url=broker_url, **values)
    extra = [("fake", FakeBackendPlugin(controls)), ("events", counter), *(plugins or [])]
    pm = get_plugin_manager(only=(), extra=extra)
    return Hub(settings, pm=pm), controls, counter


def file_request(path: Path, **fields: Any) -> JobRequest:
    source = Source(kind=SourceKind.FILE, path=str(path))
    fields.setdefault("origin", Origin(platform="cli", user_id="ada"))
    return JobRequest(source=source, **fields)


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on a hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_S
    while loop.time() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def task_id_of(hub: Hub, job_id: str) -> str:
    async def check() -> str | None:
        job = await hub.store.get_job(job_id)
        return job.remote_id if job is not None else None

    return await eventually(check, f"job {job_id} has a task id")


async def running_on(records: Records, task_id: str) -> str:
    """The worker that reported progress on the task (it is mid-task)."""

    async def check() -> str | None:
        progress = await records.progress(task_id)
        return progress.worker if progress is not None and progress.percent > 0 else None

    return await eventually(check, f"task {task_id} reports progress")


async def delivered(events: EventCounter, job_id: str) -> None:
    """Until the delivered observers ran (they run just after watchers see DONE), and a
    moment more, so that a second delivery, if there were one, is counted too."""

    async def check() -> bool:
        return events.delivered[job_id] > 0

    await eventually(check, f"job {job_id} delivered")
    await asyncio.sleep(0.5)
