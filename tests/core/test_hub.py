"""The hub's pipeline seen from outside: submit, progress, delivery, failure, cancel, retry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stemhub import hookimpl
from stemhub.errors import ErrorCode, RequestRejected, StemhubError
from stemhub.frontend import Frontend
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, JobStatus, Origin, Source, SourceKind, Stage, StemSet
from stemhub.scheduling import FairSlots
from stemhub.testing import FakeBackendControls, patience


def file_request(path: Path, **kwargs: Any) -> JobRequest:
    return JobRequest(source=Source(kind=SourceKind.FILE, path=str(path)), **kwargs)


class Events:
    """A plugin that records every lifecycle hook, some of them async."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    @hookimpl
    def stemhub_job_created(self, job: Job) -> None:
        self.seen.append(("created", job.id, job.status.value))

    @hookimpl
    async def stemhub_job_started(self, job: Job) -> None:
        await asyncio.sleep(0)
        self.seen.append(("started", job.id, job.stage.value))

    @hookimpl
    def stemhub_job_progress(self, job: Job) -> None:
        self.seen.append(("progress", job.id, f"{job.progress:.0f}"))

    @hookimpl
    async def stemhub_job_completed(self, job: Job) -> None:
        self.seen.append(("completed", job.id, ",".join(job.outputs)))

    @hookimpl
    def stemhub_job_failed(self, job: Job) -> None:
        self.seen.append(("failed", job.id, job.error_code or ""))

    @hookimpl
    def stemhub_job_delivered(self, job: Job) -> None:
        self.seen.append(("delivered", job.id, job.status.value))


async def test_submit_returns_a_persisted_queued_job_at_once(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_fake_backend.delay_s = 0.5
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    assert job.status is JobStatus.QUEUED
    stored = await stemhub_hub.store.get_job(job.id)
    assert stored is not None and stored.id == job.id


async def test_job_runs_through_every_stage_with_hooks_in_order(
    stemhub_hub: Hub, stemhub_register_plugin: Any, stemhub_audio_file: Path
) -> None:
    events = Events()
    stemhub_register_plugin(events, "events")
    job = await stemhub_hub.submit(file_request(stemhub_audio_file, stems=StemSet.FOUR_STEMS))
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert done.status is JobStatus.COMPLETED and done.stage is Stage.DONE
    assert done.delivered_at is not None
    assert set(done.outputs) == {"vocals", "drums", "bass", "other"}
    assert done.audio is not None and done.audio.duration_s == pytest.approx(1.0, abs=0.01)
    assert done.audio.bpm == 120.0 and done.audio.key == "A minor"
    kinds = [kind for kind, job_id, _ in events.seen if job_id == job.id]
    assert kinds[0] == "created" and kinds[1] == "started"
    assert "progress" in kinds
    assert kinds[-2:] == ["completed", "delivered"]


async def test_selected_stems_are_the_only_outputs(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    job = await stemhub_hub.submit(file_request(stemhub_audio_file, stems=["drums"]))
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert list(done.outputs) == ["drums"]
    path = stemhub_hub.outputs.path_of(done, done.outputs["drums"])
    assert path is not None and path.is_file()


async def test_progress_is_coalesced(
    stemhub_hub: Hub,
    stemhub_fake_backend: FakeBackendControls,
    stemhub_register_plugin: Any,
    stemhub_audio_file: Path,
) -> None:
    events = Events()
    stemhub_register_plugin(events, "events")
    stemhub_hub.settings.progress_interval_s = 0.2
    stemhub_fake_backend.progress_steps = 100
    stemhub_fake_backend.delay_s = 0.5
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    await stemhub_hub.wait_for(job.id, timeout=patience(10))
    published = [e for e in events.seen if e[0] == "progress"]
    assert 1 <= len(published) <= 5


async def test_backend_error_fails_the_job_and_still_tells_the_user(
    stemhub_hub: Hub,
    stemhub_fake_backend: FakeBackendControls,
    stemhub_register_plugin: Any,
    stemhub_audio_file: Path,
) -> None:
    events = Events()
    stemhub_register_plugin(events, "events")
    stemhub_fake_backend.fail_with = StemhubError(
        ErrorCode.INSUFFICIENT_CREDITS, "The hub ran out of separation credits."
    )
    stemhub_fake_backend.fail_times = 1
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert done.status is JobStatus.FAILED
    assert done.error_code == "INSUFFICIENT_CREDITS"
    assert ("delivered", job.id, "FAILED") in events.seen


async def test_retryable_backend_error_is_retried(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_fake_backend.fail_with = StemhubError(
        ErrorCode.BACKEND_UNAVAILABLE, "busy", retryable=True, retry_after=0.05
    )
    stemhub_fake_backend.fail_times = 2
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 2


async def test_not_audio_is_refused_with_a_stable_code(stemhub_hub: Hub, tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>" * 20)
    job = await stemhub_hub.submit(file_request(fake))
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert done.status is JobStatus.FAILED
    assert done.error_code == "UNSUPPORTED_FORMAT"


async def test_unsupported_stem_set_is_refused_before_anything_is_stored(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_hub.backend("fake").capabilities.stem_sets = frozenset({StemSet.BOTH})
    with pytest.raises(RequestRejected) as caught:
        await stemhub_hub.submit(file_request(stemhub_audio_file, stems=StemSet.SIX_STEMS))
    assert caught.value.code is ErrorCode.UNSUPPORTED_STEM_SET
    assert await stemhub_hub.store.count_jobs() == 0


async def test_validate_hook_can_refuse(
    stemhub_hub: Hub, stemhub_register_plugin: Any, stemhub_audio_file: Path
) -> None:
    class OnlyChannelA:
        @hookimpl
        async def stemhub_validate_request(self, request: JobRequest) -> None:
            if request.origin.channel_id != "A":
                raise RequestRejected(ErrorCode.FORBIDDEN, "Use #stems for splits.")

    stemhub_register_plugin(OnlyChannelA(), "only-a")
    with pytest.raises(RequestRejected, match="#stems"):
        await stemhub_hub.submit(file_request(stemhub_audio_file, origin=Origin(channel_id="B")))
    job = await stemhub_hub.submit(file_request(stemhub_audio_file, origin=Origin(channel_id="A")))
    assert job.status is JobStatus.QUEUED


async def test_idempotency_key_gives_the_same_job(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    first = await stemhub_hub.submit(file_request(stemhub_audio_file, idempotency_key="abc"))
    second = await stemhub_hub.submit(file_request(stemhub_audio_file, idempotency_key="abc"))
    assert first.id == second.id
    await stemhub_hub.wait_for(first.id, timeout=patience(10))
    assert len(stemhub_fake_backend.started) == 1


async def test_cancel_stops_the_backend_and_tells_the_user(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_fake_backend.delay_s = 5.0
    stemhub_fake_backend.progress_steps = 50
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    async for snapshot in stemhub_hub.watch(job.id, poll_s=0.05):
        if snapshot.remote_id:
            break
    cancelled = await stemhub_hub.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    done = await stemhub_hub.wait_for(job.id, timeout=patience(5))
    assert done.stage is Stage.DONE and done.error_code == "JOB_CANCELLED"
    assert stemhub_fake_backend.cancelled == [job.remote_id or cancelled.remote_id]


async def test_retry_runs_a_failed_job_again(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_fake_backend.fail_with = StemhubError(ErrorCode.BACKEND_ERROR, "boom")
    stemhub_fake_backend.fail_times = 1
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    failed = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert failed.status is JobStatus.FAILED
    with pytest.raises(StemhubError) as caught:
        await stemhub_hub.cancel(job.id)
    assert caught.value.code is ErrorCode.CONFLICT
    await stemhub_hub.retry(job.id)
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert done.status is JobStatus.COMPLETED and done.error_code is None


async def test_delivery_goes_to_the_origin_frontend_only(
    stemhub_hub: Hub, stemhub_register_plugin: Any, stemhub_audio_file: Path
) -> None:
    delivered: dict[str, list[str]] = {"chat-a": [], "chat-b": []}

    def make(name: str) -> type[Frontend]:
        class Chat(Frontend):
            async def deliver(self, job: Job) -> None:
                delivered[name].append(job.id)

        Chat.name = name
        return Chat

    stemhub_hub.frontend_factories["chat-a"] = make("chat-a")
    stemhub_hub.frontend_factories["chat-b"] = make("chat-b")
    stemhub_hub.start_frontend("chat-a")
    stemhub_hub.start_frontend("chat-b")
    job = await stemhub_hub.submit(
        file_request(stemhub_audio_file, origin=Origin(platform="chat-b"))
    )
    await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert delivered == {"chat-a": [], "chat-b": [job.id]}


async def test_flaky_delivery_is_retried_then_recorded(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    calls: list[str] = []

    class Flaky(Frontend):
        name = "flaky"

        async def deliver(self, job: Job) -> None:
            calls.append(job.id)
            if len(calls) < 3:
                raise StemhubError(
                    ErrorCode.DELIVERY_FAILED, "later", retryable=True, retry_after=0.01
                )

    stemhub_hub.frontend_factories["flaky"] = Flaky
    stemhub_hub.start_frontend("flaky")
    job = await stemhub_hub.submit(
        file_request(stemhub_audio_file, origin=Origin(platform="flaky"))
    )
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert len(calls) == 3 and done.status is JobStatus.COMPLETED


async def test_job_for_an_absent_frontend_waits_in_deliver(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    job = await stemhub_hub.submit(
        file_request(stemhub_audio_file, origin=Origin(platform="not-running"))
    )
    done = await stemhub_hub.wait_for(job.id, delivered=False, timeout=patience(10))
    assert done.status is JobStatus.COMPLETED
    await asyncio.sleep(0.1)
    stored = await stemhub_hub.store.get_job(job.id)
    assert stored is not None and stored.stage is Stage.DELIVER and stored.delivered_at is None
    assert job.id not in await stemhub_hub.recover()


async def test_concurrency_limit_bounds_work_but_not_waiting(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    """Two work slots: deliveries queue for a slot, backend waits do not."""
    stemhub_hub.work_slots = FairSlots(2)
    stemhub_hub.delivery_slots = asyncio.Semaphore(2)
    stemhub_fake_backend.delay_s = 0.3
    delivering: list[int] = []
    active = 0

    class Slow(Frontend):
        name = "slow"

        async def deliver(self, job: Job) -> None:
            nonlocal active
            active += 1
            delivering.append(active)
            await asyncio.sleep(0.2)
            active -= 1

    stemhub_hub.frontend_factories["slow"] = Slow
    stemhub_hub.start_frontend("slow")
    jobs = [
        await stemhub_hub.submit(file_request(stemhub_audio_file, origin=Origin(platform="slow")))
        for _ in range(6)
    ]
    await asyncio.sleep(0.15)
    waiting = [(await stemhub_hub.get_job(j.id)) for j in jobs]
    assert sum(1 for j in waiting if j is not None and j.remote_id) == 6
    for job in jobs:
        await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert max(delivering) == 2


async def test_a_finished_job_delivers_while_starting_jobs_hold_every_work_slot(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_hub.work_slots = FairSlots(2)
    stemhub_fake_backend.delay_s = 0.3
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    for _ in range(100):
        if (await stemhub_hub.get_job(job.id) or job).remote_id:
            break
        await asyncio.sleep(0.01)
    # a burst of jobs now fetching and starting holds every work slot
    for _ in range(2):
        await stemhub_hub.work_slots.acquire("burst")
    try:
        done = await stemhub_hub.wait_for(job.id, timeout=patience(5))
    finally:
        for _ in range(2):
            stemhub_hub.work_slots.release()
    assert done.status is JobStatus.COMPLETED
    assert done.delivered_at is not None


async def test_retry_of_a_failed_delivery_keeps_what_was_posted(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    attempts: list[dict[str, Any]] = []

    class HalfDelivers(Frontend):
        name = "half"

        async def deliver(self, job: Job) -> None:
            attempts.append(dict(job.delivery))
            if "first_message" not in job.delivery:
                job.delivery["first_message"] = "m1"
                await self.hub.save(job)
                raise StemhubError(ErrorCode.DELIVERY_FAILED, "channel gone")

    stemhub_hub.frontend_factories["half"] = HalfDelivers
    stemhub_hub.start_frontend("half")
    job = await stemhub_hub.submit(file_request(stemhub_audio_file, origin=Origin(platform="half")))
    first = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert (
        first.status is JobStatus.COMPLETED and first.delivery["error"]["code"] == "DELIVERY_FAILED"
    )
    await stemhub_hub.retry(job.id)
    second = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert len(attempts) == 2
    assert "first_message" not in attempts[0] and attempts[1]["first_message"] == "m1"
    assert "error" not in second.delivery and second.delivered_at is not None


async def test_a_backend_wrapper_sees_every_backend_and_every_job_goes_through_it(
    stemhub_hub: Hub, stemhub_audio_file: Path, stemhub_fake_backend: FakeBackendControls
) -> None:
    from stemhub.backends.base import Backend, SeparationResult, SeparationTask

    built_before = stemhub_hub.backend("fake")
    through: list[str] = []

    class Counting(Backend):
        name = "counting"

        def __init__(self, name: str, inner: Backend) -> None:
            self.inner = inner
            self.capabilities = inner.capabilities

        async def start(self, task: SeparationTask) -> str:
            through.append(task.job_id)
            return await self.inner.start(task)

        async def wait(
            self, task: SeparationTask, remote_id: str, progress: Any
        ) -> SeparationResult:
            return await self.inner.wait(task, remote_id, progress)

    stemhub_hub.add_backend_wrapper(Counting)
    wrapped = stemhub_hub.backend("fake")
    assert isinstance(wrapped, Counting) and wrapped.inner is built_before
    job = await stemhub_hub.submit(
        JobRequest(source=Source(kind=SourceKind.FILE, path=str(stemhub_audio_file)))
    )
    done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
    assert done.status is JobStatus.COMPLETED
    assert through == [job.id] and len(stemhub_fake_backend.started) == 1


async def test_a_watcher_cancelled_as_its_job_changes_stops(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    """Ctrl-C on ``stemhub split`` cancels the task that watches the job. A cancel that
    lands in the same turn of the loop as a change of the job must still stop the watch
    (Python 3.11's ``asyncio.wait_for`` returned the change and lost the cancel: seen as
    a Ctrl-C ignored, the split running to its end and exiting 0)."""
    stemhub_fake_backend.delay_s = 600.0
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    first = asyncio.Event()

    async def follow() -> None:
        async for _snapshot in stemhub_hub.watch(job.id, poll_s=600.0):
            first.set()

    watcher = asyncio.create_task(follow())
    await first.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # the watcher is parked on the job's change event
    stemhub_hub.notify(job)
    watcher.cancel()
    done, _ = await asyncio.wait({watcher}, timeout=patience(10))
    assert watcher in done and watcher.cancelled()
