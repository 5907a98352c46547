"""The stages of one job: fetch -> separate -> deliver, each a small function.

Each stage persists the job before the next starts, so :func:`run_job` can be entered
again after a crash and continues from ``job.stage``: a separation whose remote id is
known is waited on again, not resubmitted (for backends that declare ``resumable``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stemhub import lifecycle, media
from stemhub.backends.base import SeparationResult, SeparationTask
from stemhub.errors import ErrorCode, StaleJob, StemhubError
from stemhub.fetch import FetchPolicy, fetch_to_file
from stemhub.models import AudioInfo, Job, Output, SourceKind, Stage
from stemhub.retry import RetryPolicy
from stemhub.scheduling import tenant_of

if TYPE_CHECKING:
    from stemhub.frontend import Frontend
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

STAGE_RETRIES = RetryPolicy(attempts=3, first_delay_s=0.5, max_delay_s=30.0)
"""Retryable stage errors (timeouts, 5xx): three tries per job, counted in job.attempts."""

StageFn = Callable[["Hub", Job], Awaitable[None]]


async def run_job(hub: Hub, job: Job) -> None:
    """Drive a job from its current stage to the end, persisting every transition.

    Every way out ends in the deliver stage (stems, or an error for the person) and
    :func:`deliver_stage` never raises, so no exception escapes a job's task. A
    :class:`StaleJob` means another hub owns the job now: this one stops quietly.
    """
    try:
        try:
            if job.stage is Stage.FETCH:
                async with hub.fair_slot(job):
                    await _attempt(hub, job, fetch_stage)
            if job.stage is Stage.SEPARATE:
                await _attempt(hub, job, separate_stage)
        except StemhubError as error:
            if isinstance(error, StaleJob):
                raise
            await _end_without_stems(hub, job, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reference = job.id[:8]
            log.exception("job %s failed unexpectedly (reference %s)", job.id, reference)
            internal = StemhubError(
                ErrorCode.INTERNAL,
                f"Something went wrong on our side (reference {reference}).",
                operator_message=f"{type(exc).__name__}: {exc}",
            )
            await _end_without_stems(hub, job, internal)
        if job.stage is Stage.DELIVER:
            if hub.frontend(job.origin.platform) is None:
                log.info("job %s waits for the %s frontend", job.id, job.origin.platform)
                return
            async with hub.delivery_slots:
                await deliver_stage(hub, job)
    except StaleJob:
        log.info("job %s moved on elsewhere; this hub stops working on it", job.id)


async def _end_without_stems(hub: Hub, job: Job, error: StemhubError) -> None:
    """A stage failed for good: FAILED, unless the stems already exist (then deliver them)."""
    if job.finished:
        log.warning("job %s: %s after it ended; delivering", job.id, error.code.value)
        return
    await fail(hub, job, error)


async def _attempt(hub: Hub, job: Job, stage: StageFn) -> None:
    """Run a stage, retrying errors that say they may pass, within the job's budget."""
    while True:
        try:
            await stage(hub, job)
            return
        except StemhubError as error:
            if isinstance(error, StaleJob) or not error.retryable:
                raise
            job.attempts += 1
            if STAGE_RETRIES.gives_up(job.attempts):
                raise
            await hub.save(job)
            delay = STAGE_RETRIES.delay(job.attempts, error.retry_after)
            log.info("job %s: %s; retrying in %.1fs", job.id, error.code.value, delay)
            await asyncio.sleep(delay)


async def fail(hub: Hub, job: Job, error: StemhubError) -> None:
    if error.operator_message:
        log.warning("job %s failed: %s (%s)", job.id, error.code.value, error.operator_message)
    await lifecycle.fail(hub, job, error)
    await hub.hooks.job_failed(job)


async def fetch_stage(hub: Hub, job: Job) -> None:
    """Bring the audio to a local file (size cap while streaming), sniff and probe it."""
    source = job.request.source
    # a local probe is persisted with its outcome, a moment later
    await lifecycle.begin(hub, job, persist=source.kind is not SourceKind.FILE)
    hub.notify(job)
    await hub.hooks.job_started(job)
    max_bytes, max_duration = hub.input_limits(job.backend or "local")
    if source.kind is SourceKind.YOUTUBE:
        await lifecycle.advance(hub, job, Stage.SEPARATE)
        return
    if source.kind is SourceKind.FILE:
        path = Path(source.path or "")
    else:
        frontend = hub.frontends.get(job.origin.platform)
        url = source.url or ""
        headers = await frontend.source_headers(job, url) if frontend else {}
        policy = dataclasses.replace(FetchPolicy.from_settings(hub.settings), max_bytes=max_bytes)
        fetched = await fetch_to_file(url, hub.work_dir_for(job.id), policy=policy, headers=headers)
        path = fetched.path
    async with hub.probe_slots.slot(tenant_of(job.origin)):
        info = await asyncio.to_thread(media.probe, path)
    media.check_limits(info, max_bytes=max_bytes, max_duration_s=max_duration)
    await lifecycle.advance(
        hub, job, Stage.SEPARATE, audio=info, input_path=str(path), progress=0.0
    )


class _Progress:
    """Coalesces backend progress: persisted and published at most once per interval."""

    def __init__(self, hub: Hub, job: Job) -> None:
        self.hub = hub
        self.job = job
        self.last_published = 0.0

    async def __call__(self, percent: float, message: str | None = None) -> None:
        self.job.progress = max(0.0, min(100.0, float(percent)))
        self.hub.notify(self.job)
        now = time.monotonic()
        if now - self.last_published < self.hub.settings.progress_interval_s:
            return
        self.last_published = now
        await self.hub.save(self.job)
        await self.hub.hooks.job_progress(self.job)


def build_task(hub: Hub, job: Job) -> SeparationTask:
    request = job.request
    source = request.source
    out_dir = hub.outputs.dir_for(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    return SeparationTask(
        job_id=job.id,
        stem_set=request.stem_set,
        stems=request.stem_names,
        output_format=request.output_format,
        quality=request.quality,
        input_path=Path(job.input_path) if job.input_path else None,
        youtube_url=source.url if source.kind is SourceKind.YOUTUBE else None,
        filename=source.display_name,
        out_dir=out_dir,
        metadata=request.metadata,
    )


def _record_result(hub: Hub, job: Job, result: SeparationResult) -> None:
    fmt = job.request.output_format
    outputs: dict[str, Output] = {}
    for stem in job.request.stem_names:
        produced = result.stems.get(stem)
        if produced is None:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                f"The separation did not return the {stem} stem.",
                operator_message=f"backend {job.backend} returned {sorted(result.stems)}",
            )
        path: str | None = None
        if produced.path is not None:
            try:
                path = str(Path(produced.path).relative_to(hub.outputs.root))
            except ValueError:
                path = str(produced.path)
        outputs[stem] = Output(
            stem=stem,
            format=fmt,
            path=path,
            url=produced.url,
            expires_at=produced.expires_at,
            size_bytes=produced.size_bytes,
            duration_s=produced.duration_s,
        )
    job.outputs = outputs
    if job.audio is not None:
        job.audio.bpm = result.bpm if result.bpm is not None else job.audio.bpm
        job.audio.key = result.key or job.audio.key
    elif result.bpm is not None or result.key is not None:
        job.audio = AudioInfo(bpm=result.bpm, key=result.key)


async def separate_stage(hub: Hub, job: Job) -> None:
    backend = hub.backend(job.backend or "local")
    task = build_task(hub, job)
    async with hub.separation_turn(job, backend):
        if job.remote_id is None or not backend.capabilities.resumable:
            async with hub.fair_slot(job):
                job.remote_id = await backend.start(task)
                await hub.save(job)
        result = await backend.wait(task, job.remote_id, _Progress(hub, job))
    _record_result(hub, job, result)
    await lifecycle.complete(hub, job)
    if job.request.source.kind is not SourceKind.FILE:
        hub.drop_work_dir(job.id)
    await hub.hooks.job_completed(job)


def delivery_policy(hub: Hub) -> RetryPolicy:
    return RetryPolicy(attempts=hub.settings.delivery_attempts, first_delay_s=1.0)


async def deliver_stage(hub: Hub, job: Job) -> None:
    """Hand the job to its origin's frontend, within a persisted budget; never raises.

    Any exception from ``deliver`` is a failed try of this job, recorded with its
    reason in ``job.delivery`` (``attempts``, ``error``) before the next; the job's
    status stays what it is (a COMPLETED job keeps its stems whatever delivery does).
    When the budget is spent, or an error says trying again cannot help, the frontend's
    ``notify_undelivered`` is called once (recorded with the end of delivery; a hub
    stopped in between tries it again) and the job ends undelivered: ``stemhub jobs list
    --undelivered`` lists it and ``Hub.retry`` delivers it again.
    """
    frontend = hub.frontend(job.origin.platform)
    if frontend is None:
        return
    policy = delivery_policy(hub)
    error = await _deliver_within_budget(hub, job, frontend, policy)
    if error is not None:
        log.warning("delivery of job %s failed for good: %s", job.id, error.code.value)
        await _notify_undelivered(hub, job, frontend, error)
    await lifecycle.end_delivery(hub, job, error)
    if error is None:
        await hub.hooks.job_delivered(job)
    # watchers (wait_for) see the job done once its observers have run
    hub.notify(job)


async def _deliver_within_budget(
    hub: Hub, job: Job, frontend: Frontend, policy: RetryPolicy
) -> StemhubError | None:
    """The last error once the budget is spent, or None once delivered."""
    while True:
        try:
            await frontend.deliver(job)
            return None
        except (asyncio.CancelledError, StaleJob):
            raise
        except StemhubError as raised:
            error = raised
        except Exception as exc:
            log.exception("frontend %s failed to deliver job %s", frontend.name, job.id)
            error = StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "The result could not be sent.",
                retryable=True,
                operator_message=f"{type(exc).__name__}: {exc}",
            )
        failures = int(job.delivery.get("attempts", 0)) + 1
        job.delivery["attempts"] = failures
        job.delivery["error"] = error.to_dict()
        if not error.retryable or policy.gives_up(failures):
            return error
        await hub.save(job)
        await asyncio.sleep(policy.delay(failures, error.retry_after))


async def _notify_undelivered(hub: Hub, job: Job, frontend: Frontend, error: StemhubError) -> None:
    if job.delivery.get("notified"):
        return
    try:
        await frontend.notify_undelivered(job, error)
    except asyncio.CancelledError:
        # the hub is stopping: the next hub tries delivery and this notice again
        raise
    except Exception:
        log.exception("frontend %s could not tell the person about job %s", frontend.name, job.id)
        return
    # recorded with the end of delivery, in the same write: a crash in between can repeat
    # the notice (the person hears twice) but never lose it (the person hears nothing)
    job.delivery["notified"] = True


__all__ = [
    "build_task",
    "deliver_stage",
    "delivery_policy",
    "fail",
    "fetch_stage",
    "run_job",
    "separate_stage",
]
