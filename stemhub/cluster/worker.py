"""``stemhub worker``: takes separation tasks from the broker and runs the real backends.

One worker process is a Celery worker (threads pool, so heartbeats flow during long
tasks) beside one asyncio loop in its own thread. The loop owns what a hub owns for
separating: the job database (read the request, record outcomes), the backends built by
the same plugins as on a hub (the local engine, demucs, the hosted API), and the object
store. A Celery thread hands each message to that loop and blocks until the outcome is
recorded; only then does Celery acknowledge the message.

For each message: take the task's run lease (renewed while the task runs; a worker
killed mid-task lets it lapse in :data:`RUN_LEASE_S`); while another worker holds it,
wait for that run's outcome (then drop the message) or for the lease to lapse. With the
lease held, an outcome already recorded (a redelivery after a crash between the record
and the ack; a run that ended just before the claim, since a run records its outcome
before releasing the lease): drop the task. A job that is gone, finished or cancelled:
drop the task. Else download the input, start the backend, wait while polling for a
cancel request, upload the stems, record the outcome (insert-if-absent: the first run's
outcome wins), delete the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from stemhub.backends.base import Backend, SeparationResult, SeparationTask
from stemhub.cluster.objects import ObjectStore, open_object_store, stem_key
from stemhub.cluster.records import NAMESPACE, Outcome, Progress, Records, StoredError, StoredStem
from stemhub.cluster.tasks import DEFAULT_HEARTBEAT_S, TASK_NAME, SeparateMessage, make_app
from stemhub.errors import ConfigError, ErrorCode, StemhubError
from stemhub.models import Job, SourceKind

if TYPE_CHECKING:
    from celery import Celery, Task

    from stemhub.config import Settings
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

T = TypeVar("T")

CANCEL_POLL_S = 0.5
MIN_PROGRESS_INTERVAL_S = 0.2
PLUGIN_NAME = "cluster"
OPEN_ATTEMPTS = 10
ALIVE_FILE = "worker-alive"
ALIVE_EVERY_S = 10.0
OPEN_RETRY_S = 2.0
RUN_LEASE_S = 15.0
"""How long a run lease lasts unless renewed (every third of it while the task runs)."""
RUN_WAIT_POLL_S = 1.0


class _ProgressRecorder:
    """Coalesces a backend's progress into at most one write per interval."""

    def __init__(self, records: Records, task_id: str, worker: str, interval_s: float) -> None:
        self.records = records
        self.task_id = task_id
        self.worker = worker
        self.interval_s = interval_s
        self.last = 0.0

    async def __call__(self, percent: float, message: str | None = None) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        self.last = now
        progress = Progress(percent=float(percent), message=message, worker=self.worker)
        await self.records.put_progress(self.task_id, progress)


class WorkerRuntime:
    """The asyncio half of a worker: a loop thread with the store, backends and objects."""

    def __init__(
        self, settings: Settings, *, name: str, extra_plugins: Iterable[tuple[str, object]] = ()
    ) -> None:
        self.settings = settings
        self.name = name
        self.extra_plugins = list(extra_plugins)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stemhub-worker-loop")
        self.hub: Hub
        self.objects: ObjectStore
        self.records: Records
        self._alive: asyncio.Task[None]

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start(self) -> None:
        self._thread.start()
        self.call(self._open())

    async def _open(self) -> None:
        from stemhub.hub import Hub
        from stemhub.plugin.manager import get_plugin_manager

        blocked = {
            name.strip()
            for name in os.environ.get("STEMHUB_BLOCK_PLUGINS", "").split(",")
            if name.strip()
        }
        # the cluster plugin turns a hub's backends into queue proxies: a worker runs the real ones
        pm = get_plugin_manager(block=blocked | {PLUGIN_NAME}, extra=self.extra_plugins)
        for attempt in range(OPEN_ATTEMPTS):
            try:
                self.hub = await Hub(self.settings, pm=pm, recover=False).open()
                break
            except (OSError, SQLAlchemyError) as exc:
                # the database may be starting, or another process migrating it right now
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                log.warning("opening the job database failed (%s); trying again", exc)
                await asyncio.sleep(OPEN_RETRY_S)
        self.objects = open_object_store(self.settings)
        self.records = Records(self.hub.kv(NAMESPACE))
        self._alive = asyncio.create_task(self._beat_forever())

    @property
    def alive_file(self) -> Path:
        """Touched every few seconds while the loop runs: the container health check."""
        return self.settings.work_dir / ALIVE_FILE

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.to_thread(self.alive_file.touch)
            await asyncio.sleep(ALIVE_EVERY_S)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()

    async def _close(self) -> None:
        self._alive.cancel()
        await self.hub.close()
        await self.objects.close()

    def run(self, message: SeparateMessage) -> None:
        self.call(self.handle(message))

    async def handle(self, message: SeparateMessage) -> None:
        """Run one task to a recorded outcome, or drop it; raises only if nothing was recorded."""
        task_id = message.task_id
        await self.records.note_delivery(task_id, self.name)
        if not await self._claim_run(task_id):
            log.info("task %s: another worker's run recorded the outcome; dropping it", task_id)
            return
        try:
            # read once the lease is held: a run records its outcome before it releases the
            # lease, so a finished task (a redelivery after a crash between the record and
            # the ack, or a run that ended just before this claim) is never run again
            if await self.records.outcome(task_id) is not None:
                log.info("task %s: outcome already recorded; dropping the redelivery", task_id)
                return
            await self._run(message)
        finally:
            with contextlib.suppress(OSError, SQLAlchemyError):
                await self.records.release_run(task_id)

    async def _run(self, message: SeparateMessage) -> None:
        """Run a task whose run lease this worker holds."""
        task_id = message.task_id
        job = await self.hub.get_job(message.job_id)
        if job is None or job.finished or await self.records.cancel_requested(task_id):
            state = "gone" if job is None else job.status.value
            log.info("task %s: job %s is %s; dropping the task", task_id, message.job_id, state)
            return
        renewing = asyncio.create_task(self._renew_run_forever(task_id))
        try:
            await self.records.note_start(task_id, self.name)
            workdir = self.settings.work_dir / "tasks" / task_id
            try:
                outcome = await self._separate(message, job, workdir)
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)
            recorded = await self.records.record_outcome(task_id, outcome)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if not recorded:
            log.info("task %s: an earlier run recorded the outcome first", task_id)
        elif outcome.error is None and not outcome.cancelled and message.input_key:
            with contextlib.suppress(StemhubError):
                await self.objects.delete(message.input_key)

    async def _claim_run(self, task_id: str) -> bool:
        """The run lease (True), or False once another worker's run recorded the outcome."""
        waiting_on: str | None = None
        while not await self.records.claim_run(task_id, self.name, RUN_LEASE_S):
            if await self.records.outcome(task_id) is not None:
                return False
            holder = await self.records.running_on(task_id)
            if holder is not None and holder != waiting_on:
                waiting_on = holder
                log.info("task %s runs on %s; waiting for that run", task_id, holder)
            await asyncio.sleep(RUN_WAIT_POLL_S)
        return True

    async def _renew_run_forever(self, task_id: str) -> None:
        while True:
            await asyncio.sleep(RUN_LEASE_S / 3)
            try:
                await self.records.renew_run(task_id, self.name, RUN_LEASE_S)
            except (OSError, SQLAlchemyError) as exc:
                log.warning("task %s: the run lease was not renewed (%s)", task_id, exc)

    async def _separate(self, message: SeparateMessage, job: Job, workdir: Path) -> Outcome:
        try:
            backend = self.hub.backend(message.backend)
            task = await self._task(message, job, workdir)
            remote_id = await backend.start(task)
            result = await self._wait_or_cancel(backend, task, remote_id, message.task_id)
            if result is None:
                return Outcome(worker=self.name, cancelled=True)
            stems = await self._upload(job.id, result)
        except StemhubError as error:
            if error.operator_message:
                log.warning("task %s failed: %s", message.task_id, error.operator_message)
            return Outcome(worker=self.name, error=StoredError.of(error))
        except Exception as exc:
            log.exception("task %s: backend %s failed", message.task_id, message.backend)
            reference = job.id[:8]
            internal = StemhubError(
                ErrorCode.INTERNAL,
                f"Something went wrong on our side (reference {reference}).",
                operator_message=f"{type(exc).__name__}: {exc}",
            )
            return Outcome(worker=self.name, error=StoredError.of(internal))
        return Outcome(worker=self.name, stems=stems, bpm=result.bpm, key=result.key)

    async def _task(self, message: SeparateMessage, job: Job, workdir: Path) -> SeparationTask:
        request = job.request
        input_path: Path | None = None
        if message.input_key is not None:
            input_path = workdir / "input" / Path(message.input_key).name
            await self.objects.download(message.input_key, input_path)
        source = request.source
        return SeparationTask(
            job_id=job.id,
            stem_set=request.stem_set,
            stems=request.stem_names,
            output_format=request.output_format,
            quality=request.quality,
            input_path=input_path,
            youtube_url=source.url if source.kind is SourceKind.YOUTUBE else None,
            filename=source.display_name,
            out_dir=workdir / "stems",
            metadata=request.metadata,
        )

    async def _wait_or_cancel(
        self, backend: Backend, task: SeparationTask, remote_id: str, task_id: str
    ) -> SeparationResult | None:
        interval = max(self.settings.progress_interval_s, MIN_PROGRESS_INTERVAL_S)
        progress = _ProgressRecorder(self.records, task_id, self.name, interval)
        waiter = asyncio.create_task(backend.wait(task, remote_id, progress))
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=CANCEL_POLL_S)
            if done:
                return waiter.result()
            if await self.records.cancel_requested(task_id):
                log.info("task %s: cancel requested; stopping the backend", task_id)
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, StemhubError):
                    await waiter
                with contextlib.suppress(StemhubError):
                    await backend.cancel(remote_id)
                return None

    async def _upload(self, job_id: str, result: SeparationResult) -> dict[str, StoredStem]:
        stems: dict[str, StoredStem] = {}
        for stem, produced in result.stems.items():
            if produced.path is None:
                stems[stem] = StoredStem(
                    url=produced.url, size_bytes=produced.size_bytes, duration_s=produced.duration_s
                )
                continue
            path = Path(produced.path)
            key = stem_key(job_id, f"{stem}{path.suffix}")
            size = await self.objects.upload(key, path)
            stems[stem] = StoredStem(key=key, size_bytes=size, duration_s=produced.duration_s)
        return stems


def default_name() -> str:
    return f"stemhub-worker-{os.getpid()}@{socket.gethostname()}"


RETRY_AFTER_S = 5.0
"""When the outcome could not be recorded (database or store down), try again this late."""


def build_app(runtime: WorkerRuntime, broker_url: str, *, heartbeat_s: float) -> Celery:
    """The worker's Celery app with the separation task bound to ``runtime``.

    A task that could not record its outcome is retried: Celery publishes it again (same
    task id) before it acknowledges this delivery, so the work is never lost.
    """
    app = make_app(
        broker_url,
        heartbeat_s=heartbeat_s,
        visibility_timeout_s=runtime.settings.broker_visibility_timeout_s,
    )

    def separate(
        task: Task[Any, Any], job_id: str, backend: str, input_key: str | None = None
    ) -> None:
        message = SeparateMessage(
            task_id=str(task.request.id), job_id=job_id, backend=backend, input_key=input_key
        )
        try:
            runtime.run(message)
        except (OSError, StemhubError, SQLAlchemyError) as exc:
            log.warning("task %s: outcome not recorded (%s); retrying", message.task_id, exc)
            raise task.retry(exc=exc, countdown=RETRY_AFTER_S, max_retries=None) from exc

    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)(separate)
    return app


def run_worker(
    settings: Settings,
    *,
    queues: Iterable[str],
    concurrency: int,
    name: str | None = None,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> int:
    """Run a worker until it is told to stop (SIGTERM: finish running tasks first)."""
    if settings.broker_url is None:
        raise ConfigError("STEMHUB_BROKER_URL", "missing (a worker takes its tasks from it)")
    worker_name = name or default_name()
    runtime = WorkerRuntime(settings, name=worker_name, extra_plugins=extra_plugins)
    runtime.start()
    try:
        app = build_app(runtime, settings.broker_url.get_secret_value(), heartbeat_s=heartbeat_s)
        worker = app.Worker(
            hostname=worker_name,
            queues=list(queues),
            concurrency=concurrency,
            pool="threads",
            loglevel="INFO",
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            optimization="fair",
        )
        worker.start()
        return int(getattr(worker, "exitcode", 0) or 0)
    finally:
        runtime.stop()


__all__ = ["WorkerRuntime", "build_app", "default_name", "run_worker"]
