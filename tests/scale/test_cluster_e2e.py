"""The worker role end to end, with real processes on loopback.

RabbitMQ, PostgreSQL (a fresh database per test), moto's S3 server; hubs and workers
are separate processes where the test kills them.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile

from stemhub.cluster.records import NAMESPACE, Records
from stemhub.models import JobStatus, Stage
from stemhub.testing import write_test_tone
from tests.scale._cluster import (
    cluster_hub,
    delivered,
    file_request,
    running_on,
    task_id_of,
)
from tests.scale.conftest import REPO

# worker processes start in seconds on an idle machine, in a minute on a busy one
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def env(rabbitmq: str, postgres_url: str, s3: Any) -> dict[str, str]:
    return {"STEMHUB_DATABASE_URL": postgres_url, "STEMHUB_BROKER_URL": rabbitmq, **s3.env()}


async def test_stemhub_worker_separates_with_the_local_engine_into_the_bucket(
    env: dict[str, str], s3: Any, tmp_path: Path, workers_factory: Any
) -> None:
    """The real command (``stemhub worker``) and the real engine; the hub only proxies."""
    song = write_test_tone(tmp_path / "song.wav", seconds=3.0)
    hub, _controls, events = cluster_hub(
        tmp_path / "hub",
        database_url=env["STEMHUB_DATABASE_URL"],
        broker_url=env["STEMHUB_BROKER_URL"],
        extra_settings={**s3.settings(), "default_backend": "local"},
    )
    async with hub:
        workers = workers_factory(env)
        stemhub = str(Path(sys.executable).parent / "stemhub")
        worker = workers.start(
            "engine",
            command=[stemhub, "worker", "--queues", "cpu", "--concurrency", "1", "--name", "eng"],
        )
        await asyncio.to_thread(workers.wait_ready, worker)
        job = await hub.submit(file_request(song, stems="BOTH"))
        done = await hub.wait_for(job.id, timeout=300)

        assert done.status is JobStatus.COMPLETED, done.error_message
        assert sorted(done.outputs) == ["instrumental", "vocals"]
        assert events.completed[job.id] == 1
        links = hub.links(done)
        async with httpx.AsyncClient() as client:
            for stem in done.outputs:
                response = await client.get(links[stem][0])
                assert response.status_code == 200
                audio, rate = soundfile.read(io.BytesIO(response.content))
                assert rate == 44100 and audio.shape[0] == 3 * 44100
        assert await Records(hub.kv(NAMESPACE)).runs(done.remote_id or "") == ["eng"]


async def test_a_hub_killed_while_waiting_is_resumed_by_another_hub_on_the_same_task(
    env: dict[str, str], s3: Any, tmp_path: Path, workers_factory: Any, stemhub_audio_file: Path
) -> None:
    """SIGKILL the hub that submitted the job; a second hub claims it and waits on its task.

    The proxy is resumable: the second hub reads the worker's outcome instead of sending
    the job again (one delivery of one task), and delivers once.
    """
    # the second hub, opened first, migrates the fresh database and recovers every 0.2 s
    survivor, _controls, events = cluster_hub(
        tmp_path / "hub-b",
        database_url=env["STEMHUB_DATABASE_URL"],
        broker_url=env["STEMHUB_BROKER_URL"],
        extra_settings=s3.settings(),
    )
    survivor.recovery_interval_s = 0.2
    async with survivor:
        workers = workers_factory(env)
        worker = workers.start("w", delay_s=3.0, steps=30)
        await asyncio.to_thread(workers.wait_ready, worker)
        doomed = subprocess.Popen(  # noqa: ASYNC220 - started once, then awaited in a thread
            [sys.executable, "-m", "tests.scale._hub_main", str(stemhub_audio_file)],
            cwd=tmp_path,
            env={
                **worker_env(env, tmp_path / "hub-a"),
                "TEST_HUB_LEASE_S": "1.0",
                "PYTHONPATH": str(REPO),
            },
            stdout=subprocess.PIPE,
        )
        try:
            assert doomed.stdout is not None
            line = await asyncio.to_thread(doomed.stdout.readline)
            job_id = json.loads(line)["job"]
            records = Records(survivor.kv(NAMESPACE))
            task_id = await task_id_of(survivor, job_id)
            await running_on(records, task_id)
            doomed.send_signal(signal.SIGKILL)
        finally:
            doomed.kill()
            doomed.wait(timeout=10)
            doomed.stdout.close()  # type: ignore[union-attr]

        done = await survivor.wait_for(job_id, timeout=300)
        await delivered(events, job_id)

        assert done.status is JobStatus.COMPLETED and done.stage is Stage.DONE
        assert done.remote_id == task_id
        assert await records.deliveries(task_id) == ["w"]
        assert events.completed[job_id] == 1 and events.delivered[job_id] == 1


def worker_env(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        **env,
        "STEMHUB_DATA_DIR": str(data_dir),
        "STEMHUB_SIGNING_KEY": "stemhub-test-signing-key",
        "STEMHUB_DEFAULT_BACKEND": "fake",
        "STEMHUB_PROGRESS_INTERVAL_S": "0",
    }
