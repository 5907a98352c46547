"""Every status and stage change of a job: checked, then persisted with a guard.

A job moves through two coordinates: its status (QUEUED, RUNNING, then one terminal
status) and its stage (fetch, separate, deliver, done). Nothing else in stemhub sets
either; the pipeline, ``Hub.submit/cancel/retry`` and recovery call the functions here.

Each function checks the change against the allowed moves below and raises
:class:`~stemhub.errors.TransitionRefused` for any other, then writes the job through
the store's guarded write: the write names the version the copy was read at, so a stale
copy (a hub whose lease lapsed, a recovery pass that read before a delivery) changes
nothing and gets :class:`~stemhub.errors.StaleJob`. A finished job is never reopened by
accident: only :func:`reopen` (an explicit retry) moves a terminal status back.

::

    QUEUED/fetch --begin--> RUNNING/fetch --advance--> RUNNING/separate
    RUNNING/separate --complete--> COMPLETED/deliver
    QUEUED|RUNNING --fail|cancel--> FAILED|CANCELLED/deliver
    any terminal/deliver --end_delivery--> same status/done (delivered or undelivered)
    COMPLETED/done, delivered --expire--> EXPIRED/done (retention removed the stems)
    FAILED|CANCELLED|EXPIRED --reopen--> QUEUED/fetch
    COMPLETED/done, undelivered --reopen--> COMPLETED/deliver
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stemhub.errors import ErrorCode, StemhubError, TransitionRefused
from stemhub.models import ALLOWED_TRANSITIONS, Job, JobStatus, Stage, utcnow

if TYPE_CHECKING:
    from stemhub.hub import Hub

_WORKING_STAGES = frozenset({Stage.FETCH, Stage.SEPARATE})


def allowed(job: Job, status: JobStatus, stage: Stage) -> bool:
    """Whether ``job`` may move to ``status`` at ``stage``."""
    if status is job.status:
        if not status.finished:
            order = (Stage.FETCH, Stage.SEPARATE)
            return stage in _WORKING_STAGES and order.index(stage) >= order.index(job.stage)
        if job.stage is Stage.DELIVER:
            return stage in (Stage.DELIVER, Stage.DONE)
        # delivery ended; only a completed, undelivered job goes back to delivery
        return stage is Stage.DONE or (
            stage is Stage.DELIVER and status is JobStatus.COMPLETED and job.undelivered
        )
    if status not in ALLOWED_TRANSITIONS[job.status]:
        return False
    if status is JobStatus.EXPIRED:
        # only stems that reached the person expire; an undelivered job keeps them
        return stage is Stage.DONE and job.stage is Stage.DONE and job.delivered_at is not None
    if status is JobStatus.RUNNING:
        return stage is Stage.FETCH
    if status is JobStatus.QUEUED:
        return stage is Stage.FETCH
    # into a terminal status: only from unfinished work, straight to delivery
    return stage is Stage.DELIVER and job.stage in _WORKING_STAGES


def move(job: Job, status: JobStatus, stage: Stage, **changes: Any) -> None:
    """Apply a checked move to the in-memory job (no write); see :func:`allowed`."""
    if not allowed(job, status, stage):
        raise TransitionRefused(
            job.id,
            f"go from {job.status.value}/{job.stage.value} to {status.value}/{stage.value}",
        )
    job.status = status
    job.stage = stage
    for name, value in changes.items():
        setattr(job, name, value)


async def begin(hub: Hub, job: Job, *, persist: bool = True) -> None:
    """The job left the queue: RUNNING at the fetch stage."""
    if job.status is JobStatus.RUNNING:
        return
    move(job, JobStatus.RUNNING, Stage.FETCH, started_at=job.started_at or utcnow())
    if persist:
        await hub.save(job)


async def advance(hub: Hub, job: Job, stage: Stage, **changes: Any) -> None:
    """A running job's next stage (fetch -> separate), with what the stage produced."""
    move(job, JobStatus.RUNNING, stage, **changes)
    await hub.save(job)


async def complete(hub: Hub, job: Job) -> None:
    """Separation finished; ``job.outputs`` holds the stems. Delivery comes next."""
    move(job, JobStatus.COMPLETED, Stage.DELIVER, progress=100.0, finished_at=utcnow())
    await hub.save(job)


async def fail(hub: Hub, job: Job, error: StemhubError) -> None:
    """The job ended without stems; the person is told by the delivery that follows."""
    move(
        job,
        JobStatus.FAILED,
        Stage.DELIVER,
        error_code=error.code.value,
        error_message=error.message,
        finished_at=utcnow(),
    )
    await hub.save(job)


async def cancel(hub: Hub, job: Job) -> None:
    """Someone stopped the job; the cancel notice is delivered like a failure."""
    move(
        job,
        JobStatus.CANCELLED,
        Stage.DELIVER,
        error_code=ErrorCode.JOB_CANCELLED.value,
        error_message="The job was cancelled.",
        finished_at=utcnow(),
    )
    await hub.save(job)


async def end_delivery(hub: Hub, job: Job, error: StemhubError | None) -> None:
    """Delivery is over: delivered (``error`` None) or given up for good.

    One write: the stage, the delivery record and the release of the lease. Once this
    committed no hub claims the job again, so nobody delivers it twice.
    """
    changes: dict[str, Any] = {}
    if error is None:
        job.delivery.pop("error", None)
        changes["delivered_at"] = utcnow()
    else:
        job.delivery["error"] = error.to_dict()
    move(job, job.status, Stage.DONE, **changes)
    # watchers are woken by the caller, once the delivered observers have run
    await hub.save(job, release=True, notify=False)


async def expire(hub: Hub, job: Job) -> None:
    """Retention removed the stems of a delivered job: its links are gone for good."""
    move(
        job,
        JobStatus.EXPIRED,
        Stage.DONE,
        error_code=ErrorCode.JOB_EXPIRED.value,
        error_message="The stems were deleted after the retention period.",
    )
    await hub.save(job)


async def reopen(hub: Hub, job: Job) -> None:
    """An explicit retry: run a failed job again, or deliver an undelivered one again."""
    if job.status is JobStatus.COMPLETED and job.undelivered:
        # keep what the frontend already sent, so a retry sends only what is missing
        job.delivery.pop("error", None)
        job.delivery["attempts"] = 0
        move(job, JobStatus.COMPLETED, Stage.DELIVER)
    elif job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED):
        move(
            job,
            JobStatus.QUEUED,
            Stage.FETCH,
            delivery={},
            outputs={},
            remote_id=None,
            error_code=None,
            error_message=None,
            progress=0.0,
            finished_at=None,
            delivered_at=None,
            attempts=0,
        )
    else:
        raise StemhubError(
            ErrorCode.CONFLICT,
            f"Only failed, cancelled, expired or undelivered jobs can be retried; "
            f"{job.id} is {job.status.value}.",
        )
    await hub.save(job)


__all__ = [
    "advance",
    "allowed",
    "begin",
    "cancel",
    "complete",
    "end_delivery",
    "expire",
    "fail",
    "move",
    "reopen",
]
