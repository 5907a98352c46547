"""Each guarantee of docs/adr/0002-task-engine.md, against the real brokers on loopback.

Every test runs on RabbitMQ and on Redis (the ``broker`` fixture). Redis emulates
acknowledgements with a visibility timeout, set to a few seconds here so that its one
weakened guarantee shows within a test: a task that outlives the timeout is handed out
again while its worker lives, and the run lease makes that delivery wait, never run.

The hub runs in the test's process (its backends become queue proxies because a broker is
configured); workers are separate ``stemhub worker`` processes with a fake separation of
fixed duration; the job database is a fresh PostgreSQL database; stems go to a bucket on
the loopback S3 server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stemhub.cluster.records import NAMESPACE, Records
from stemhub.cluster.tasks import QUEUES, SeparateMessage, make_app, publish
from stemhub.cluster.worker import WorkerRuntime
from stemhub.models import JobStatus, Origin, Stage
from stemhub.testing import PATIENCE, FakeBackendControls, FakeBackendPlugin, make_settings
from tests.scale._cluster import (
    cluster_hub,
    delivered,
    eventually,
    file_request,
    running_on,
    task_id_of,
)
from tests.scale.conftest import Broker

# worker processes start in seconds on an idle machine, in a minute on a busy one
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def env(broker: Broker, postgres_url: str, s3: Any) -> dict[str, str]:
    return {"STEMHUB_DATABASE_URL": postgres_url, **broker.env, **s3.env()}


def hub_for(tmp_path: Path, env: dict[str, str], s3: Any, **kwargs: Any) -> Any:
    return cluster_hub(
        tmp_path / "hub",
        database_url=env["STEMHUB_DATABASE_URL"],
        broker_url=env["STEMHUB_BROKER_URL"],
        extra_settings=s3.settings(),
        **kwargs,
    )


async def test_a_worker_killed_mid_task_has_its_task_redelivered_and_the_job_completes_once(
    broker: Broker,
    env: dict[str, str],
    s3: Any,
    tmp_path: Path,
    workers_factory: Any,
    stemhub_audio_file: Path,
) -> None:
    """RabbitMQ redelivers at once; Redis after its visibility timeout. Either way the
    survivor waits for the dead worker's run lease to lapse, then runs the task."""
    hub, controls, events = hub_for(tmp_path, env, s3)
    async with hub:
        workers = workers_factory(env)
        first = workers.start("w1", delay_s=4.0, steps=40)
        second = workers.start("w2", delay_s=4.0, steps=40)
        await asyncio.to_thread(workers.wait_ready, first)
        await asyncio.to_thread(workers.wait_ready, second)
        records = Records(hub.kv(NAMESPACE))
        job = await hub.submit(file_request(stemhub_audio_file))
        task_id = await task_id_of(hub, job.id)
        busy = await running_on(records, task_id)
        victim = first if busy == first.name else second
        survivor = second if victim is first else first
        victim.kill()

        done = await hub.wait_for(job.id, timeout=300)
        await delivered(events, job.id)

        assert done.status is JobStatus.COMPLETED and done.stage is Stage.DONE
        deliveries = await records.deliveries(task_id)
        if broker.is_redis:
            # a delivery waiting out the lease may outlive the timeout and come back, dropped
            assert deliveries[:2] == [victim.name, survivor.name]
            assert set(deliveries[2:]) <= {survivor.name}
        else:
            assert deliveries == [victim.name, survivor.name]
        assert await records.runs(task_id) == [victim.name, survivor.name]
        outcome = await records.outcome(task_id)
        assert outcome is not None and outcome.worker == survivor.name
        assert events.completed[job.id] == 1
        assert events.delivered[job.id] == 1
        assert controls.started == []  # the hub separated nothing itself
        expected = stemhub_audio_file.read_bytes()
        async with httpx.AsyncClient() as client:
            for stem, (url, _expires) in hub.links(done).items():
                response = await client.get(url)
                assert response.status_code == 200, stem
                assert response.content == expected
        # the input is gone once the outcome is recorded; the stems stay
        assert s3.keys() == sorted(f"stemhub/{job.id}/{stem}.wav" for stem in done.outputs)


async def test_a_long_task_is_not_redelivered_while_its_worker_lives(
    broker: Broker,
    env: dict[str, str],
    s3: Any,
    tmp_path: Path,
    workers_factory: Any,
    stemhub_audio_file: Path,
) -> None:
    """The task outlives many heartbeat timeouts (1 s heartbeats, 12 s of separation).

    With the ``solo`` pool the heartbeats stop during the task, RabbitMQ closes the
    connection and delivers the task again (seen: a second delivery, dropped only because
    the outcome was recorded by then).

    On Redis the task also outlives the visibility timeout (6 s here), so Redis hands it
    out again while it runs: that is the guarantee Redis weakens. The second delivery
    finds the first worker's run lease, waits for its outcome and is dropped: the task
    runs once (without the lease it runs twice: seen).
    """
    hub, _controls, events = hub_for(tmp_path, env, s3)
    async with hub:
        workers = workers_factory(env)
        # both ready before the job: the idle one is there to take a second delivery
        started = [
            workers.start(name, delay_s=12.0, steps=12, heartbeat_s=1.0)
            for name in ("first", "second")
        ]
        for worker in started:
            await asyncio.to_thread(workers.wait_ready, worker)
        records = Records(hub.kv(NAMESPACE))
        job = await hub.submit(file_request(stemhub_audio_file))
        task_id = await task_id_of(hub, job.id)
        busy = await running_on(records, task_id)

        async def progress_reached_the_job() -> bool:
            current = await hub.get_job(job.id)
            return current is not None and 0 < current.progress < 100

        # the worker's progress reaches the job (what its frontend shows), while it runs
        await eventually(progress_reached_the_job, "progress on the hub's job")
        done = await hub.wait_for(job.id, timeout=300)
        assert done.status is JobStatus.COMPLETED
        assert await records.runs(task_id) == [busy]
        if broker.is_redis:
            idle = "second" if busy == "first" else "first"
            # the idle worker got the task while the busy one ran it, and waited (on a
            # slow machine the waiting delivery may outlive the timeout and come back too)
            deliveries = await records.deliveries(task_id)
            assert deliveries[0] == busy and idle in deliveries[1:]
            assert "waiting for that run" in started[["first", "second"].index(idle)].output()
        else:
            assert await records.deliveries(task_id) == [busy]
        assert events.completed[job.id] == 1


async def test_cancel_reaches_a_running_task_and_frees_its_worker(
    env: dict[str, str], s3: Any, tmp_path: Path, workers_factory: Any, stemhub_audio_file: Path
) -> None:
    hub, _controls, _events = hub_for(tmp_path, env, s3)
    async with hub:
        workers = workers_factory(env)
        worker = workers.start("only", delay_s=600.0, steps=600)
        await asyncio.to_thread(workers.wait_ready, worker)
        records = Records(hub.kv(NAMESPACE))
        job = await hub.submit(file_request(stemhub_audio_file))
        task_id = await task_id_of(hub, job.id)
        await running_on(records, task_id)

        cancelled = await hub.cancel(job.id)

        assert cancelled.status is JobStatus.CANCELLED
        outcome = await eventually(lambda: records.outcome(task_id), "the worker stopped")
        assert outcome.cancelled and outcome.worker == "only"
        # the one task slot is free again: the 10-minute separation did not go on
        progress = await records.progress(task_id)
        assert progress is not None and progress.percent < 50


async def test_a_task_for_a_cancelled_or_finished_job_is_dropped(
    env: dict[str, str], s3: Any, tmp_path: Path, workers_factory: Any, stemhub_audio_file: Path
) -> None:
    hub, _controls, events = hub_for(tmp_path, env, s3)
    async with hub:
        records = Records(hub.kv(NAMESPACE))
        doomed = await hub.submit(file_request(stemhub_audio_file))
        doomed_task = await task_id_of(hub, doomed.id)
        await hub.cancel(doomed.id)  # no worker runs yet: the task waits in the queue

        workers = workers_factory(env)
        worker = workers.start("late")
        await asyncio.to_thread(workers.wait_ready, worker)
        finished = await hub.submit(file_request(stemhub_audio_file))
        finished_task = await task_id_of(hub, finished.id)
        await hub.wait_for(finished.id, timeout=300)
        first_outcome = await records.outcome(finished_task)

        # a redelivery of the finished job's task (as after a crash before the ack)
        app = make_app(env["STEMHUB_BROKER_URL"])
        message = SeparateMessage(task_id=finished_task, job_id=finished.id, backend="fake")
        await asyncio.to_thread(publish, app, message)
        # and one more job behind it, to know the worker has read the queue that far
        marker = await hub.submit(file_request(stemhub_audio_file))
        await hub.wait_for(marker.id, timeout=300)
        app.close()

        assert await records.deliveries(doomed_task) == ["late"]
        assert await records.runs(doomed_task) == []
        assert await records.outcome(doomed_task) is None
        assert await records.deliveries(finished_task) == ["late", "late"]
        assert await records.runs(finished_task) == ["late"]
        assert await records.outcome(finished_task) == first_outcome
        assert events.completed[finished.id] == 1
        assert "dropping the task" in worker.output()
        assert "dropping the redelivery" in worker.output()


def read_queue(url: str, name: str) -> list[Any]:
    """Every message waiting in a queue, put back afterwards (kombu Message objects)."""
    from kombu import Connection

    app = make_app(url)
    queue = next(q for q in app.conf.task_queues if q.name == name)
    messages: list[Any] = []
    with Connection(url) as conn:
        bound = queue(conn.channel())
        while (message := bound.get(no_ack=False)) is not None:
            messages.append(message)
        for message in messages:
            message.requeue()
    app.close()
    return messages


async def test_tasks_are_routed_by_backend_and_carry_only_ids_and_object_keys(
    env: dict[str, str], s3: Any, tmp_path: Path, workers_factory: Any, stemhub_audio_file: Path
) -> None:
    from tests.scale._worker_main import FakeUnderNames

    names = ["demucs", "stemsplit"]
    plugins = [("fake-names", FakeUnderNames(names, FakeBackendControls()))]
    hub, _controls, _events = hub_for(tmp_path, env, s3, plugins=plugins)
    async with hub:
        # a user id no random task id can contain by chance (task ids are hex)
        person = Origin(platform="cli", user_id="person-who-asked")
        jobs = {
            backend: await hub.submit(
                file_request(stemhub_audio_file, backend=backend, origin=person)
            )
            for backend in ("fake", "demucs", "stemsplit")
        }
        tasks = {backend: await task_id_of(hub, job.id) for backend, job in jobs.items()}

        queued = {
            name: await asyncio.to_thread(read_queue, env["STEMHUB_BROKER_URL"], name)
            for name in QUEUES
        }
        routed = {
            name: sorted(m.headers["id"] for m in messages) for name, messages in queued.items()
        }
        assert routed == {
            "cpu": [tasks["fake"]],
            "gpu": [tasks["demucs"]],
            "remote": [tasks["stemsplit"]],
        }
        for messages in queued.values():
            (message,) = messages
            # a str from RabbitMQ, bytes from Redis
            raw = message.body
            body = raw.decode() if isinstance(raw, bytes) else raw
            args, kwargs, _embed = json.loads(body)
            job = next(j for j in jobs.values() if j.id == kwargs["job_id"])
            assert args == []
            assert kwargs == {
                "job_id": job.id,
                "backend": job.backend,
                "input_key": f"inputs/{job.id}/{stemhub_audio_file.name}",
            }
            assert len(body) < 512 and "RIFF" not in body
            # nothing about the request or this machine rides along in the headers either
            headers = json.dumps(message.headers)
            assert str(stemhub_audio_file) not in headers and "person-who" not in headers

        workers = workers_factory(env)
        everything = "fake,demucs,stemsplit"
        started = [
            workers.start(f"{queue}-worker", queues=queue, fake_names=everything)
            for queue in QUEUES
        ]
        for worker in started:
            await asyncio.to_thread(workers.wait_ready, worker)
        records = Records(hub.kv(NAMESPACE))
        for job in jobs.values():
            await hub.wait_for(job.id, timeout=300)
        ran_on = {backend: (await records.runs(task_id)) for backend, task_id in tasks.items()}
        assert ran_on == {
            "fake": ["cpu-worker"],
            "demucs": ["gpu-worker"],
            "stemsplit": ["remote-worker"],
        }


async def test_tenants_take_turns_on_the_workers(
    env: dict[str, str], s3: Any, tmp_path: Path, workers_factory: Any, stemhub_audio_file: Path
) -> None:
    """The hub hands out its worker turns round-robin: a burst does not fill the queue.

    The proxy keeps the engine's ``concurrency`` (on a hub with a broker: the tasks it
    keeps on the workers), so the core's fair turns decide what is published next.
    With the turns off (``fair_scheduling=False``) the order is first come, first served.
    """
    hub, controls, _events = hub_for(tmp_path, env, s3)
    controls.concurrency = 1
    async with hub:
        workers = workers_factory(env)
        # long enough that every job waits for its turn before the first one ends
        worker = workers.start("only", delay_s=3.0, steps=3)
        await asyncio.to_thread(workers.wait_ready, worker)

        def from_(user: str) -> Any:
            return file_request(stemhub_audio_file, origin=Origin(platform="cli", user_id=user))

        burst = [await hub.submit(from_("ann")) for _ in range(4)]
        late = await hub.submit(from_("bob"))
        done = [await hub.wait_for(job.id, timeout=300) for job in [*burst, late]]

    order = [job.request.origin.user_id for job in sorted(done, key=lambda j: j.finished_at)]
    # ann's first job runs, her second was waiting before bob came, then bob's turn
    # (first come, first served would put bob last)
    assert order == ["ann", "ann", "bob", "ann", "ann"]


def purge_queue(url: str, name: str) -> None:
    """Empty one task queue, as a broker restarted without its queues would have it."""
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        conn.channel().queue_purge(name)


async def test_a_task_no_worker_ever_takes_ends_the_job_with_a_message(
    env: dict[str, str], s3: Any, tmp_path: Path, stemhub_audio_file: Path
) -> None:
    """No worker at all: the task is published three times, a lost-task interval apart,
    and then the job fails with a message for the person (the wait on workers ends)."""
    settings = {**s3.settings(), "broker_lost_task_s": 1.0}
    hub, _controls, events = cluster_hub(
        tmp_path / "hub",
        database_url=env["STEMHUB_DATABASE_URL"],
        broker_url=env["STEMHUB_BROKER_URL"],
        extra_settings=settings,
    )
    async with hub:
        job = await hub.submit(file_request(stemhub_audio_file))
        task_id = await task_id_of(hub, job.id)
        done = await hub.wait_for(job.id, timeout=300)

        assert done.status is JobStatus.FAILED
        assert done.error_code == "BACKEND_UNAVAILABLE"
        assert "No separation worker took this job" in (done.error_message or "")
        assert events.failed[job.id] == 1
        queued = await asyncio.to_thread(read_queue, env["STEMHUB_BROKER_URL"], "cpu")
        assert [message.headers["id"] for message in queued] == [task_id] * 3


def take_queue(url: str, name: str) -> list[SeparateMessage]:
    """Every message waiting in a queue, acknowledged: what a worker would receive."""
    from kombu import Connection

    app = make_app(url)
    queue = next(q for q in app.conf.task_queues if q.name == name)
    taken: list[SeparateMessage] = []
    with Connection(url) as conn:
        bound = queue(conn.channel())
        while (message := bound.get(no_ack=False)) is not None:
            raw = message.body
            _args, kwargs, _embed = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            taken.append(SeparateMessage(task_id=message.headers["id"], **kwargs))
            message.ack()
    app.close()
    return taken


async def test_a_task_the_broker_lost_is_published_again_and_runs_once(
    env: dict[str, str],
    s3: Any,
    tmp_path: Path,
    stemhub_audio_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The queue is emptied under a waiting job (a broker restarted without persistence):
    no worker could ever take the task. The hub publishes it again; a worker runs it once.

    The worker is a worker runtime in this process, fed what it takes off the real queue,
    so that it is ready before the loss (a worker process may take a minute to start on a
    busy machine, longer than the hub's two tries).
    """
    lost_after = 2.0 * PATIENCE
    settings = {**s3.settings(), "broker_lost_task_s": lost_after}
    hub, _controls, events = cluster_hub(
        tmp_path / "hub",
        database_url=env["STEMHUB_DATABASE_URL"],
        broker_url=env["STEMHUB_BROKER_URL"],
        extra_settings=settings,
    )
    worker_settings = make_settings(
        tmp_path / "worker", database_url=env["STEMHUB_DATABASE_URL"], **s3.settings()
    )
    fake = FakeBackendPlugin(FakeBackendControls())
    runtime = WorkerRuntime(worker_settings, name="late", extra_plugins=[("fake", fake)])
    await asyncio.to_thread(runtime.start)
    try:
        async with hub:
            records = Records(hub.kv(NAMESPACE))
            job = await hub.submit(file_request(stemhub_audio_file))
            task_id = await task_id_of(hub, job.id)
            await asyncio.to_thread(purge_queue, env["STEMHUB_BROKER_URL"], "cpu")

            async def published_again() -> list[SeparateMessage]:
                return await asyncio.to_thread(take_queue, env["STEMHUB_BROKER_URL"], "cpu")

            taken = await eventually(published_again, "the task is published again")
            for message in taken:
                await asyncio.to_thread(runtime.run, message)
            done = await hub.wait_for(job.id, timeout=300)

            assert [message.task_id for message in taken] == [task_id]
            assert done.status is JobStatus.COMPLETED
            assert await records.runs(task_id) == ["late"]
            assert events.completed[job.id] == 1
            assert "publishing it again (1/2)" in caplog.text
    finally:
        await asyncio.to_thread(runtime.stop)
