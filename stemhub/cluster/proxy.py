"""The hub's side of a worker split: a backend that sends the work to ``stemhub worker``.

With a broker configured every backend of the hub is wrapped in a :class:`QueuedBackend`.
``start`` puts the input in the object store and publishes a task (ids and keys only);
``wait`` reads the outcome and the progress the worker records in the job database;
``cancel`` records a cancel request the running worker polls. A task that shows no sign
of a worker for ``broker_lost_task_s`` (a broker restarted without its queues, a purged
queue) is published again, twice at most; then the job fails with a message, so a wait
on the workers always ends. The pipeline does not know
the difference: the job's ``remote_id`` is the task id, and the backend is ``resumable``,
so a hub that restarts waits on the same task instead of sending it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.cluster.objects import ObjectStore, input_key
from stemhub.cluster.records import Outcome, Records
from stemhub.cluster.tasks import SeparateMessage, publish, queue_for
from stemhub.errors import ErrorCode, StemhubError

if TYPE_CHECKING:
    from celery import Celery

    from stemhub.plugin.api import KeyValue

log = logging.getLogger(__name__)

POLL_FIRST_S = 0.1
POLL_MAX_S = 1.0
LIFE_CHECK_S = 5.0
"""How often a waiting hub looks for a worker on its task (deliveries, run lease)."""
REPUBLISHES = 2
"""Publishes of a task that shows no sign of a worker, after the first, before the job fails."""


class _SignsOfLife:
    """Tells a task a worker knows about from one the broker lost.

    A sign: a new delivery noted, a run lease held, new progress. Each resets the clock;
    ``lost`` is True once the clock passes ``lost_after_s``.
    """

    def __init__(self, records: Records, task_id: str, lost_after_s: float) -> None:
        self.records = records
        self.task_id = task_id
        self.lost_after_s = lost_after_s
        self.deliveries = -1
        self.since = time.monotonic()
        self.checked = 0.0

    def seen(self) -> None:
        self.since = time.monotonic()

    async def lost(self) -> bool:
        now = time.monotonic()
        if now - self.checked < min(LIFE_CHECK_S, self.lost_after_s / 3):
            return False
        self.checked = now
        deliveries = len(await self.records.deliveries(self.task_id))
        if deliveries != self.deliveries or await self.records.running_on(self.task_id):
            self.deliveries = deliveries
            self.since = now
        return now - self.since > self.lost_after_s


class QueuedBackend(Backend):
    """Runs a backend on the workers; declares that backend's capabilities, resumable.

    The engine's ``concurrency`` stays: on a hub with a broker it is the number of tasks
    the hub keeps on the workers, handed out round-robin across tenants by the core.
    """

    name: ClassVar[str] = "queued"

    def __init__(
        self,
        backend_name: str,
        inner: Backend,
        *,
        app: Celery,
        objects: ObjectStore,
        kv: KeyValue,
        link_ttl_s: int,
        lost_after_s: float = 3600.0,
    ) -> None:
        self.backend_name = backend_name
        self.inner = inner
        self.app = app
        self.objects = objects
        self.records = Records(kv)
        self.link_ttl_s = link_ttl_s
        self.lost_after_s = lost_after_s
        self.capabilities = inner.capabilities.model_copy(update={"resumable": True})

    @property
    def available(self) -> bool:
        """Forwarded so callers still see whether demucs has weights; a backend without
        the attribute is available, as everywhere else (``stemhub split`` checks it)."""
        return bool(getattr(self.inner, "available", True))

    @property
    def queue(self) -> str:
        return queue_for(self.backend_name)

    async def start(self, task: SeparationTask) -> str:
        task_id = f"{task.job_id}-{uuid.uuid4().hex[:12]}"
        message = self._message(task, task_id)
        if message.input_key is not None and task.input_path is not None:
            await self.objects.upload(message.input_key, task.input_path)
        await self._publish(message)
        log.info("job %s: task %s on queue %s", task.job_id, task_id, self.queue)
        return task_id

    def _message(self, task: SeparationTask, task_id: str) -> SeparateMessage:
        key: str | None = None
        if task.input_path is not None:
            key = input_key(task.job_id, task.filename or task.input_path.name)
        return SeparateMessage(
            task_id=task_id, job_id=task.job_id, backend=self.backend_name, input_key=key
        )

    async def _publish(self, message: SeparateMessage) -> None:
        try:
            await asyncio.to_thread(publish, self.app, message)
        except OSError as exc:
            raise StemhubError(
                ErrorCode.BACKEND_UNAVAILABLE,
                "The separation workers are not reachable right now; trying again.",
                retryable=True,
                operator_message=f"broker publish failed: {type(exc).__name__}: {exc}",
            ) from exc

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        delay = POLL_FIRST_S
        reported: float | None = None
        life = _SignsOfLife(self.records, remote_id, self.lost_after_s)
        republished = 0
        while True:
            outcome = await self.records.outcome(remote_id)
            if outcome is not None:
                return await self._result(outcome)
            current = await self.records.progress(remote_id)
            if current is not None and current.percent != reported:
                reported = current.percent
                life.seen()
                await progress(current.percent, current.message)
                delay = POLL_FIRST_S
            elif await life.lost():
                if republished == REPUBLISHES:
                    raise self._lost(remote_id, republished)
                republished += 1
                log.warning(
                    "task %s: no worker took it in %.0fs; publishing it again (%d/%d)",
                    remote_id,
                    self.lost_after_s,
                    republished,
                    REPUBLISHES,
                )
                await self._publish(self._message(task, remote_id))
                life.seen()
            await asyncio.sleep(delay)
            delay = min(POLL_MAX_S, delay * 1.5)

    def _lost(self, task_id: str, republished: int) -> StemhubError:
        return StemhubError(
            ErrorCode.BACKEND_UNAVAILABLE,
            "No separation worker took this job in time. Please try again later.",
            operator_message=(
                f"task {task_id} on queue {self.queue}: no sign of a worker after "
                f"{republished + 1} publishes, {self.lost_after_s:.0f}s apart"
            ),
        )

    async def _result(self, outcome: Outcome) -> SeparationResult:
        if outcome.cancelled:
            raise StemhubError(ErrorCode.JOB_CANCELLED, "The job was cancelled.")
        if outcome.error is not None:
            outcome.error.raise_it()
        stems: dict[str, StemFile] = {}
        for stem, stored in outcome.stems.items():
            path: Path | None = None
            url, expires = stored.url, None
            if stored.key is not None:
                path = self.objects.local_path(stored.key)
                link = await self.objects.link(stored.key, self.link_ttl_s)
                if link is not None:
                    url, expires = link
            stems[stem] = StemFile(
                stem=stem,
                path=path,
                url=url,
                expires_at=expires,
                size_bytes=stored.size_bytes,
                duration_s=stored.duration_s,
            )
        return SeparationResult(
            stems=stems, bpm=outcome.bpm, key=outcome.key, raw={"worker": outcome.worker}
        )

    async def cancel(self, remote_id: str) -> None:
        await self.records.request_cancel(remote_id)

    async def refresh_outputs(self, remote_id: str) -> SeparationResult:
        outcome = await self.records.outcome(remote_id)
        if outcome is None or outcome.error is not None or outcome.cancelled:
            raise StemhubError(ErrorCode.NOT_FOUND, "This job has no stems to link to.")
        return await self._result(outcome)

    async def describe(self) -> dict[str, Any]:
        return {"runs_on": f"workers (queue {self.queue})", "backend": self.backend_name}

    async def close(self) -> None:
        await self.inner.close()


__all__ = ["QueuedBackend"]
