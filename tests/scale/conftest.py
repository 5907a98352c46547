"""The real parts of a cluster on loopback: RabbitMQ or Redis, an S3 server, workers.

RabbitMQ (127.0.0.1:5672, guest/guest) and Redis (127.0.0.1:6379) run on every machine
of this project and on CI; a test that needs one skips with the reason when it is down,
and fails instead under ``CI=true``. The ``broker`` fixture runs a test on each; Redis
also needs the ``redis`` client package (Celery's ``redis`` extra): without it the Redis
runs skip, saying so. The S3 API server is moto's server mode on a free
loopback port. Workers are real ``stemhub worker`` processes (tests/scale/_worker_main.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RABBITMQ_URL = os.environ.get("STEMHUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("STEMHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REDIS_VISIBILITY_TIMEOUT_S = 6.0
"""Short, so a killed worker's task comes back within a test (and a task outlives it)."""
REPO = Path(__file__).resolve().parents[2]


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {type(exc).__name__}: {exc}"
    if _under_ci():
        pytest.fail(message + " (required under CI)")
    pytest.skip(message)


def purge_queues(url: str) -> None:
    """Declare the task queues (durable, as the app does) and empty them."""
    from kombu import Connection

    from stemhub.cluster.tasks import make_app

    if url.startswith("redis"):
        import redis

        # the test database: queues, and unacknowledged messages a sweep would bring back
        redis.Redis.from_url(url).flushdb()
    app = make_app(url)
    with Connection(url, connect_timeout=3) as conn:
        channel = conn.channel()
        for queue in app.conf.task_queues:
            queue(channel).declare()
            with contextlib.suppress(Exception):
                channel.queue_purge(queue.name)
    app.close()


@pytest.fixture(scope="session")
def rabbitmq_server() -> str:
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        _unavailable(f"RabbitMQ at {RABBITMQ_URL}", exc)
    return RABBITMQ_URL


@pytest.fixture
def rabbitmq(rabbitmq_server: str) -> str:
    """The broker URL, with the task queues empty."""
    purge_queues(rabbitmq_server)
    return rabbitmq_server


@pytest.fixture(scope="session")
def redis_server() -> str:
    import importlib.util

    from kombu import Connection

    if importlib.util.find_spec("redis") is None:
        pytest.skip("the redis client package is not installed (celery[redis]): Redis untested")
    try:
        with Connection(REDIS_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        _unavailable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


@dataclass(frozen=True)
class Broker:
    """A broker for a test: its URL and the settings its hub and workers need."""

    url: str
    env: dict[str, str]

    @property
    def is_redis(self) -> bool:
        return self.url.startswith("redis")


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker the ADR's guarantees are tested on, with its task queues empty."""
    if request.param == "rabbitmq":
        url: str = request.getfixturevalue("rabbitmq")
        return Broker(url, {"STEMHUB_BROKER_URL": url})
    url = request.getfixturevalue("redis_server")
    purge_queues(url)
    timeout = str(REDIS_VISIBILITY_TIMEOUT_S)
    return Broker(url, {"STEMHUB_BROKER_URL": url, "STEMHUB_BROKER_VISIBILITY_TIMEOUT_S": timeout})


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str = "stemhub-test"
    secret_key: str = "stemhub-test-secret"

    def settings(self) -> dict[str, Any]:
        return {
            "object_store_url": f"s3://{self.bucket}/stemhub",
            "s3_endpoint_url": self.endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
        }

    def env(self) -> dict[str, str]:
        return {f"STEMHUB_{key.upper()}": str(value) for key, value in self.settings().items()}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> S3Server:
    """A fresh bucket on the loopback S3 server."""
    server = S3Server(endpoint=moto_endpoint, bucket=f"stems-{uuid.uuid4().hex[:10]}")
    server.client().create_bucket(Bucket=server.bucket)
    return server


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no ack, no goodbye to the broker."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Workers:
    tmp: Path
    base_env: dict[str, str]
    started: list[WorkerProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        *,
        queues: str = "cpu",
        delay_s: float = 0.2,
        steps: int = 10,
        concurrency: int = 1,
        heartbeat_s: float = 30.0,
        fake_names: str = "fake",
        command: list[str] | None = None,
        **env: str,
    ) -> WorkerProcess:
        data_dir = self.tmp / f"worker-{name}"
        log = self.tmp / f"worker-{name}.log"
        variables = {
            **os.environ,
            **self.base_env,
            "STEMHUB_DATA_DIR": str(data_dir),
            "STEMHUB_SIGNING_KEY": "stemhub-test-signing-key",
            "STEMHUB_PROGRESS_INTERVAL_S": "0",
            "TEST_WORKER_NAME": name,
            "TEST_WORKER_QUEUES": queues,
            "TEST_WORKER_CONCURRENCY": str(concurrency),
            "TEST_FAKE_DELAY_S": str(delay_s),
            "TEST_FAKE_STEPS": str(steps),
            "TEST_FAKE_NAMES": fake_names,
            "TEST_BROKER_HEARTBEAT_S": str(heartbeat_s),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            **env,
        }
        with log.open("wb") as handle:
            process = subprocess.Popen(
                command or [sys.executable, "-m", "tests.scale._worker_main"],
                cwd=self.tmp,
                env=variables,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(name=name, process=process, log=log)
        self.started.append(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess, timeout: float = 300.0) -> None:
        """Until Celery says the worker is ready (it consumes from then on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker {worker.name} exited:\n{worker.output()}")
            if " ready." in worker.output():
                return
            time.sleep(0.1)
        raise AssertionError(f"worker {worker.name} never became ready:\n{worker.output()}")

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.started:
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=5)


@pytest.fixture
def workers_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Workers]]:
    made: list[Workers] = []

    def make(base_env: dict[str, str]) -> Workers:
        workers = Workers(tmp=tmp_path, base_env=base_env)
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.stop_all()
