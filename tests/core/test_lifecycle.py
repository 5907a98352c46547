"""The enforced job lifecycle: checked transitions, guarded writes, delivery that ends."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pluggy
import pytest

from stemhub import hookimpl, lifecycle
from stemhub._store import Store
from stemhub.errors import ErrorCode, StaleJob, StemhubError, TransitionRefused
from stemhub.frontend import Frontend
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, JobStatus, Origin, Source, SourceKind, Stage
from stemhub.plugin.manager import WrapperRefused
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, patience


def file_request(path: Path, platform: str = "cli") -> JobRequest:
    return JobRequest(
        source=Source(kind=SourceKind.FILE, path=str(path)), origin=Origin(platform=platform)
    )


class Counting(Frontend):
    """A frontend whose deliver always raises a plain bug, counting every call."""

    name = "counting"
    delivers = 0
    notices: list[tuple[str, str]] = []

    async def deliver(self, job: Job) -> None:
        type(self).delivers += 1
        raise RuntimeError("boom in the frontend")

    async def notify_undelivered(self, job: Job, error: StemhubError) -> None:
        type(self).notices.append((job.id, error.code.value))


@pytest.fixture
def counting() -> type[Counting]:
    Counting.delivers = 0
    Counting.notices = []
    return Counting


async def test_a_frontend_bug_ends_in_an_undelivered_completed_job_told_once(
    stemhub_hub: Hub, stemhub_audio_file: Path, counting: type[Counting]
) -> None:
    stemhub_hub.settings.delivery_attempts = 3
    stemhub_hub.frontend_factories["counting"] = counting
    stemhub_hub.start_frontend("counting")
    job = await stemhub_hub.submit(file_request(stemhub_audio_file, "counting"))
    done = await stemhub_hub.wait_for(job.id, timeout=patience(30))

    assert done.status is JobStatus.COMPLETED and done.stage is Stage.DONE
    assert set(done.outputs) == {"vocals", "drums", "bass", "other"}
    assert done.undelivered and done.delivered_at is None
    assert done.delivery["error"]["code"] == ErrorCode.DELIVERY_FAILED.value
    budget = stemhub_hub.settings.delivery_attempts
    assert done.delivery["attempts"] == budget
    assert counting.delivers == budget
    assert counting.notices == [(job.id, ErrorCode.DELIVERY_FAILED.value)]
    # the job is never claimed and delivered again, however often recovery runs
    for _ in range(5):
        assert await stemhub_hub.recover() == []
    assert counting.delivers == budget and len(counting.notices) == 1
    assert await stemhub_hub.count_jobs(undelivered=True) == 1
    assert [j.id for j in await stemhub_hub.list_jobs(undelivered=True)] == [job.id]
    stored = await stemhub_hub.store.get_job(job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED


async def test_retry_delivers_an_undelivered_job_again_without_a_second_notice(
    stemhub_hub: Hub, stemhub_audio_file: Path, counting: type[Counting]
) -> None:
    stemhub_hub.settings.delivery_attempts = 2
    stemhub_hub.frontend_factories["counting"] = counting
    stemhub_hub.start_frontend("counting")
    job = await stemhub_hub.submit(file_request(stemhub_audio_file, "counting"))
    await stemhub_hub.wait_for(job.id, timeout=patience(30))
    await stemhub_hub.retry(job.id)
    again = await stemhub_hub.wait_for(job.id, timeout=patience(30))
    assert counting.delivers == 2 * stemhub_hub.settings.delivery_attempts
    assert again.undelivered and len(counting.notices) == 1


async def test_a_stale_copy_cannot_overwrite_a_newer_state(store: Store) -> None:
    job = await store.insert_job(Job(request=file_request(Path("/x.wav"))))
    first = await store.get_job(job.id)
    stale = await store.get_job(job.id)
    assert first is not None and stale is not None
    lifecycle.move(first, JobStatus.RUNNING, Stage.FETCH)
    await store.save_job(first)
    lifecycle.move(stale, JobStatus.FAILED, Stage.DELIVER)
    with pytest.raises(StaleJob):
        await store.save_job(stale)
    stored = await store.get_job(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert stored.version == first.version == 1


async def test_recovery_racing_a_delivery_never_claims_the_delivered_job(store: Store) -> None:
    job = await store.insert_job(
        Job(request=file_request(Path("/x.wav"))), owner="hub-a", lease_s=30
    )
    # hub B's recovery pass read the job while hub A was still separating it
    read_by_b = await store.get_job(job.id)
    assert read_by_b is not None
    lifecycle.move(job, JobStatus.RUNNING, Stage.FETCH)
    lifecycle.move(job, JobStatus.RUNNING, Stage.SEPARATE)
    lifecycle.move(job, JobStatus.COMPLETED, Stage.DELIVER)
    await store.save_job(job)
    lifecycle.move(job, JobStatus.COMPLETED, Stage.DONE)
    await store.save_job(job, release=True)
    # the delivery released the lease (owner NULL): the claim must still refuse a done job
    assert not await store.claim_job(job.id, "hub-b", 30)
    assert await store.claim_and_read(job.id, "hub-b", 30) is None
    assert job.id not in await store.claimable_job_ids("hub-b")
    # and B's stale copy cannot write the job back to an earlier stage
    lifecycle.move(read_by_b, JobStatus.RUNNING, Stage.FETCH)
    with pytest.raises(StaleJob):
        await store.save_job(read_by_b)
    stored = await store.get_job(job.id)
    assert stored is not None and stored.stage is Stage.DONE


async def test_a_valid_lease_is_never_taken(store: Store) -> None:
    job = await store.insert_job(
        Job(request=file_request(Path("/x.wav"))), owner="hub-a", lease_s=30
    )
    assert await store.claim_and_read(job.id, "hub-b", 30) is None
    mine = await store.claim_and_read(job.id, "hub-a", 30)
    assert mine is not None and mine.version == 1  # a claim is a write


@pytest.mark.parametrize(
    ("status", "stage", "to_status", "to_stage"),
    [
        (JobStatus.COMPLETED, Stage.DELIVER, JobStatus.FAILED, Stage.DELIVER),
        (JobStatus.COMPLETED, Stage.DONE, JobStatus.QUEUED, Stage.FETCH),
        (JobStatus.FAILED, Stage.DONE, JobStatus.RUNNING, Stage.FETCH),
        (JobStatus.RUNNING, Stage.SEPARATE, JobStatus.RUNNING, Stage.FETCH),
        (JobStatus.QUEUED, Stage.FETCH, JobStatus.COMPLETED, Stage.DELIVER),
        (JobStatus.CANCELLED, Stage.DONE, JobStatus.CANCELLED, Stage.DELIVER),
        # only delivered stems expire: an undelivered job, one still delivering, or work
        (JobStatus.COMPLETED, Stage.DONE, JobStatus.EXPIRED, Stage.DONE),
        (JobStatus.COMPLETED, Stage.DELIVER, JobStatus.EXPIRED, Stage.DONE),
        (JobStatus.RUNNING, Stage.SEPARATE, JobStatus.EXPIRED, Stage.DELIVER),
    ],
)
def test_transitions_outside_the_lifecycle_are_refused(
    status: JobStatus, stage: Stage, to_status: JobStatus, to_stage: Stage
) -> None:
    job = Job(request=file_request(Path("/x.wav")), status=status, stage=stage)
    with pytest.raises(TransitionRefused) as refused:
        lifecycle.move(job, to_status, to_stage)
    assert refused.value.code is ErrorCode.CONFLICT
    assert (job.status, job.stage) == (status, stage)


async def test_a_completed_job_cannot_be_retried(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    await stemhub_hub.wait_for(job.id, timeout=patience(30))
    with pytest.raises(StemhubError) as refused:
        await stemhub_hub.retry(job.id)
    assert refused.value.code is ErrorCode.CONFLICT


class RaisingObserver:
    @hookimpl
    def stemhub_job_completed(self, job: Job) -> None:
        raise ValueError("observer bug")

    @hookimpl
    async def stemhub_job_started(self, job: Job) -> None:
        raise RuntimeError("async observer bug")


class Recorder:
    def __init__(self) -> None:
        self.completed: list[str] = []

    @hookimpl
    def stemhub_job_completed(self, job: Job) -> None:
        self.completed.append(job.id)


async def test_a_raising_observer_is_logged_by_name_and_breaks_nothing(
    stemhub_hub: Hub,
    stemhub_register_plugin: Any,
    stemhub_audio_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    stemhub_register_plugin(recorder, "recorder")
    stemhub_register_plugin(RaisingObserver(), "raiser")
    with caplog.at_level(logging.ERROR, logger="stemhub.plugin.manager"):
        job = await stemhub_hub.submit(file_request(stemhub_audio_file))
        done = await stemhub_hub.wait_for(job.id, timeout=patience(30))
    assert done.status is JobStatus.COMPLETED and done.delivered_at is not None
    assert recorder.completed == [job.id]
    failures = [r.getMessage() for r in caplog.records]
    assert "plugin raiser failed in stemhub_job_completed" in failures
    assert "plugin raiser failed in stemhub_job_started" in failures


class Wrapper:
    @hookimpl(wrapper=True)
    def stemhub_job_completed(self, job: Job) -> Any:
        return (yield)


class OldStyleWrapper:
    @hookimpl(hookwrapper=True)
    def stemhub_job_created(self, job: Job) -> Any:
        yield


@pytest.mark.parametrize("plugin", [Wrapper(), OldStyleWrapper()])
async def test_wrapper_implementations_are_refused_at_registration(
    stemhub_hub: Hub, plugin: object
) -> None:
    with pytest.raises(WrapperRefused, match="declared as a wrapper"):
        stemhub_hub.pm.register(plugin, name="wrapping")
    assert stemhub_hub.pm.get_plugin("wrapping") is None


async def test_tryfirst_and_trylast_order_observers(
    stemhub_hub: Hub, stemhub_register_plugin: Any, stemhub_audio_file: Path
) -> None:
    order: list[str] = []

    class Last:
        @hookimpl(trylast=True)
        def stemhub_job_created(self, job: Job) -> None:
            order.append("last")

    class First:
        @hookimpl(tryfirst=True)
        def stemhub_job_created(self, job: Job) -> None:
            order.append("first")

    class Plain:
        @hookimpl
        def stemhub_job_created(self, job: Job) -> None:
            order.append("plain")

    stemhub_register_plugin(Last(), "last")
    stemhub_register_plugin(First(), "first")
    stemhub_register_plugin(Plain(), "plain")
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    await stemhub_hub.wait_for(job.id, timeout=patience(30))
    assert order == ["first", "plain", "last"]


def test_a_misspelled_hook_fails_at_registration() -> None:
    class Typo:
        @hookimpl
        def stemhub_job_complete(self, job: Job) -> None:
            """Misspelled: the hook is stemhub_job_completed."""

    settings_pm = open_test_hub(make_settings(Path("/nonexistent")), FakeBackendControls()).pm
    settings_pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError):
        settings_pm.check_pending()


async def test_a_frontend_recording_on_a_copy_does_not_stop_the_running_job(
    stemhub_hub: Hub, stemhub_fake_backend: FakeBackendControls, stemhub_audio_file: Path
) -> None:
    stemhub_fake_backend.delay_s = 0.5
    job = await stemhub_hub.submit(file_request(stemhub_audio_file))
    async for seen in stemhub_hub.watch(job.id, poll_s=0.05):
        if seen.stage is Stage.SEPARATE:
            break
    copy = await stemhub_hub.require_job(job.id)
    copy.delivery["status_message"] = "m1"
    await stemhub_hub.record_delivery(copy)
    done = await stemhub_hub.wait_for(job.id, timeout=patience(30))
    assert done.status is JobStatus.COMPLETED and done.delivered_at is not None
    assert done.delivery["status_message"] == "m1"


async def test_a_hub_whose_lease_lapsed_is_refused_once_another_claimed(store: Store) -> None:
    job = await store.insert_job(
        Job(request=file_request(Path("/x.wav"))), owner="hub-a", lease_s=0.05
    )
    held_by_a = await store.get_job(job.id)
    assert held_by_a is not None
    for _ in range(int(patience(5) / 0.02)):
        if job.id in await store.claimable_job_ids("hub-b"):
            break
        await asyncio.sleep(0.02)
    taken = await store.claim_and_read(job.id, "hub-b", 30)
    assert taken is not None
    lifecycle.move(held_by_a, JobStatus.RUNNING, Stage.FETCH)
    with pytest.raises(StaleJob):
        await store.save_job(held_by_a)
    lifecycle.move(taken, JobStatus.RUNNING, Stage.FETCH)
    await store.save_job(taken)
