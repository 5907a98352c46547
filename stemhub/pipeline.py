"""The stages of one job: fetch -> separate -> deliver, each a small function.

Each stage persists the job before the next starts, so :func:`run_job` can be entered
again after a crash and continues from ``job.stage``: a separation whose remote id is
known is waited on again, not resubmitted (for backends that declare ``resumable``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stemhub import media
from stemhub.backends.base import SeparationResult, SeparationTask
from stemhub.errors import ErrorCode, StemhubError
from stemhub.fetch import FetchPolicy, fetch_to_file
from stemhub.models import AudioInfo, Job, JobStatus, Output, SourceKind, Stage, utcnow

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

STAGE_ATTEMPTS = 3

StageFn = Callable[["Hub", Job], Awaitable[None]]


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    jitter: float = random.random()
    return min(30.0, 0.5 * 2.0**attempt) * (0.5 + jitter)


async def run_job(hub: Hub, job: Job) -> None:
    """Drive a job from its current stage to the end, persisting every transition."""
    try:
        while job.stage is not Stage.DONE:
            if job.stage is Stage.FETCH:
                async with hub.work_slots:
                    await _attempt(hub, job, fetch_stage)
            elif job.stage is Stage.SEPARATE:
                await _attempt(hub, job, separate_stage)
            elif job.stage is Stage.DELIVER:
                async with hub.delivery_slots:
                    delivered = await deliver_stage(hub, job)
                if not delivered:
                    return
    except StemhubError as error:
        await fail(hub, job, error)
        if job.stage is Stage.DELIVER:
            await deliver_stage(hub, job)
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
        await fail(hub, job, internal)
        await deliver_stage(hub, job)


async def _attempt(hub: Hub, job: Job, stage: StageFn) -> None:
    """Run a stage, retrying errors that say they may pass (timeouts, 5xx)."""
    for attempt in range(STAGE_ATTEMPTS):
        try:
            await stage(hub, job)
            return
        except StemhubError as error:
            if not error.retryable or attempt == STAGE_ATTEMPTS - 1:
                raise
            job.attempts += 1
            await hub.save(job)
            delay = _backoff(attempt, error.retry_after)
            log.info("job %s: %s; retrying in %.1fs", job.id, error.code.value, delay)
            await asyncio.sleep(delay)


async def fail(hub: Hub, job: Job, error: StemhubError) -> None:
    job.status = JobStatus.FAILED
    job.error_code = error.code.value
    job.error_message = error.message
    job.finished_at = utcnow()
    job.stage = Stage.DELIVER
    if error.operator_message:
        log.warning("job %s failed: %s (%s)", job.id, error.code.value, error.operator_message)
    await hub.save(job)
    await hub.call_hook("stemhub_job_failed", hub=hub, job=job)


async def fetch_stage(hub: Hub, job: Job) -> None:
    """Bring the audio to a local file (size cap while streaming), sniff and probe it."""
    job.status = JobStatus.RUNNING
    job.started_at = job.started_at or utcnow()
    source = job.request.source
    if source.kind is SourceKind.FILE:
        hub.notify(job)  # a local probe: persisted with its outcome, a moment later
    else:
        await hub.save(job)
    await hub.call_hook("stemhub_job_started", hub=hub, job=job)
    max_bytes, max_duration = hub.input_limits(job.backend or "local")
    if source.kind is SourceKind.YOUTUBE:
        job.stage = Stage.SEPARATE
        await hub.save(job)
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
    async with hub.probe_slots:
        info = await asyncio.to_thread(media.probe, path)
    media.check_limits(info, max_bytes=max_bytes, max_duration_s=max_duration)
    job.audio = info
    job.input_path = str(path)
    job.stage = Stage.SEPARATE
    job.progress = 0.0
    await hub.save(job)


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
        await self.hub.call_hook("stemhub_job_progress", hub=self.hub, job=self.job)


def build_task(hub: Hub, job: Job) -> SeparationTask:
    request = job.request
    source = request.source
    out_dir = hub.outputs.job_dir(job.id)
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
    if job.remote_id is None or not backend.capabilities.resumable:
        async with hub.work_slots:
            job.remote_id = await backend.start(task)
            await hub.save(job)
    result = await backend.wait(task, job.remote_id, _Progress(hub, job))
    _record_result(hub, job, result)
    job.status = JobStatus.COMPLETED
    job.progress = 100.0
    job.finished_at = utcnow()
    job.stage = Stage.DELIVER
    await hub.save(job)
    if job.request.source.kind is not SourceKind.FILE:
        hub.drop_work_dir(job.id)
    await hub.call_hook("stemhub_job_completed", hub=hub, job=job)


async def deliver_stage(hub: Hub, job: Job) -> bool:
    """Hand the job to its origin's frontend; record the delivery once.

    A delivery that keeps failing is recorded in ``job.delivery["error"]`` (the stems
    stay; ``Hub.retry`` delivers again).

    Returns False when the origin's frontend does not run in this hub: the job waits in
    the deliver stage until a hub with that frontend claims it.
    """
    frontend = hub.frontends.get(job.origin.platform)
    if frontend is None:
        log.info("job %s waits for the %s frontend", job.id, job.origin.platform)
        return False
    attempts = hub.settings.delivery_attempts
    for attempt in range(attempts):
        try:
            await frontend.deliver(job)
            break
        except StemhubError as error:
            if not error.retryable or attempt == attempts - 1:
                log.warning("delivery of job %s failed: %s", job.id, error.code.value)
                job.delivery["error"] = error.to_dict()
                break
            await asyncio.sleep(_backoff(attempt, error.retry_after))
    # watchers see DONE only once the delivery is recorded and observers have run
    done = job.model_copy(update={"stage": Stage.DONE})
    if await hub.store.mark_delivered(done):
        await hub.call_hook("stemhub_job_delivered", hub=hub, job=done)
    job.stage, job.delivered_at, job.updated_at = Stage.DONE, done.delivered_at, done.updated_at
    hub.notify(job)
    return True


__all__ = ["build_task", "deliver_stage", "fail", "fetch_stage", "run_job", "separate_stage"]
