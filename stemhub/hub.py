"""The Hub: owns the store, the backends, the frontends and the plugins; runs jobs.

``Hub.submit`` validates a request, persists a QUEUED job and returns at once; the job
then runs as an asyncio task through :mod:`stemhub.pipeline`. Every plugin call goes
through the typed facade here (``call_hook``), which awaits async implementations one by
one (the datasette ``await_me_maybe`` pattern).

Restart recovery: on open, and then every ``recovery_interval_s``, the hub claims the
lease of every unfinished job nobody holds (its hub died) and resumes it at its stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from stemhub.config import Settings
from stemhub.errors import ErrorCode, RequestRejected, StemhubError
from stemhub.frontend import Frontend
from stemhub.hookspecs import BackendFactory, FrontendFactory
from stemhub.models import (
    Job,
    JobRequest,
    JobStatus,
    SourceKind,
    Stage,
    utcnow,
)
from stemhub.outputs import OutputStore
from stemhub.plugins import StemhubPluginManager, get_plugin_manager
from stemhub.sealing import Sealer
from stemhub.store import Store

if TYPE_CHECKING:
    from stemhub.backends.base import Backend

log = logging.getLogger(__name__)

OBSERVER_HOOKS = frozenset(
    {
        "stemhub_job_created",
        "stemhub_job_started",
        "stemhub_job_progress",
        "stemhub_job_completed",
        "stemhub_job_failed",
        "stemhub_job_delivered",
        "stemhub_startup",
        "stemhub_shutdown",
    }
)


class CliFrontend(Frontend):
    """The shell: the command that submitted the job waits for it, so delivery is a no-op."""

    name = "cli"

    async def deliver(self, job: Job) -> None:
        return None


async def await_me_maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Hub:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pm: StemhubPluginManager | None = None,
        plugins: str | Iterable[str] | None = None,
        recover: bool = True,
        lease_s: float = 30.0,
        recovery_interval_s: float = 10.0,
        frontends: Iterable[str] = (),
    ) -> None:
        self.settings = settings or Settings()
        self.pm = pm or get_plugin_manager(only=plugins)
        self.instance_id = uuid.uuid4().hex[:16]
        self.lease_s = lease_s
        self.recovery_interval_s = recovery_interval_s
        self._recover_on_open = recover
        self._frontends_to_start = list(frontends)
        self.store: Store
        self.outputs: OutputStore
        self.sealer: Sealer
        self.backend_factories: dict[str, BackendFactory] = {}
        self.frontend_factories: dict[str, FrontendFactory] = {"cli": CliFrontend}
        self._backends: dict[str, Backend] = {}
        self.frontends: dict[str, Frontend] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Job] = {}
        # submitted here, stored already leased to this hub, not spawned yet
        self._submitting: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self._background: list[asyncio.Task[None]] = []
        # held while a job fetches or starts its separation, not while it waits on a
        # backend: a hub can have thousands of remote jobs in flight
        self.work_slots = asyncio.Semaphore(self.settings.concurrency)
        # deliveries have slots of their own: a finished job (someone waits for it) must
        # not queue behind a burst of jobs that are only starting
        self.delivery_slots = asyncio.Semaphore(self.settings.concurrency)
        # probes share the default executor with every other to_thread call (file reads
        # and writes of uploads and downloads); a burst of jobs must not queue thousands
        # of probes in front of those
        self.probe_slots = asyncio.Semaphore(os.cpu_count() or 1)
        self._opened = False
        self._closing = False

    # lifecycle

    async def open(self) -> Self:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        settings.resolved_output_dir.mkdir(parents=True, exist_ok=True)
        signing_key = settings.resolved_signing_key()
        self.sealer = Sealer(signing_key)
        self.outputs = OutputStore(
            settings.resolved_output_dir,
            signing_key,
            public_url=settings.public_url,
            link_ttl_s=settings.link_ttl_s,
        )
        self.store = await Store.open(settings.resolved_database_url)
        self.pm.hook.stemhub_register_backends(register=self._register_backend)
        self.pm.hook.stemhub_register_frontends(register=self._register_frontend)
        self.frontends["cli"] = CliFrontend(self)
        for name in self._frontends_to_start:
            self.start_frontend(name)
        self._opened = True
        await self.call_hook("stemhub_startup", hub=self)
        self._background.append(asyncio.create_task(self._renew_leases_forever()))
        if self._recover_on_open:
            await self.recover()
            self._background.append(asyncio.create_task(self._recover_forever()))
            self._background.append(asyncio.create_task(self._cleanup_forever()))
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop gracefully: running jobs stay persisted at their stage, leases released."""
        if not self._opened or self._closing:
            return
        self._closing = True
        for task in self._background:
            task.cancel()
        running = list(self._tasks.items())
        for _job_id, task in running:
            task.cancel()
        for job_id, task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await self.store.release_job(job_id, self.instance_id)
        await asyncio.gather(*self._background, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.call_hook("stemhub_shutdown", hub=self)
        for frontend in list(self.frontends.values()):
            with contextlib.suppress(Exception):
                await frontend.close()
        for backend in list(self._backends.values()):
            with contextlib.suppress(Exception):
                await backend.close()
        await self.store.close()
        self._opened = False

    # registries

    def _register_backend(self, name: str, factory: BackendFactory) -> None:
        self.backend_factories[name] = factory

    def _register_frontend(self, name: str, factory: FrontendFactory) -> None:
        self.frontend_factories[name] = factory

    def backend(self, name: str) -> Backend:
        """The backend called ``name``, built on first use."""
        if name not in self._backends:
            factory = self.backend_factories.get(name)
            if factory is None:
                known = ", ".join(sorted(self.backend_factories)) or "none"
                raise StemhubError(
                    ErrorCode.INVALID_REQUEST,
                    f"There is no backend called {name!r} (installed: {known}).",
                )
            self._backends[name] = factory(self)
        return self._backends[name]

    def choose_backend(self, request: JobRequest) -> tuple[str, str]:
        """The backend for a request and why it was picked (the CLI says both)."""
        if request.backend:
            return request.backend, "asked for"
        configured = self.settings.default_backend
        if configured != "auto":
            return configured, "set as STEMHUB_DEFAULT_BACKEND"
        if self.settings.stemsplit_api_key is not None and "stemsplit" in self.backend_factories:
            return "stemsplit", "STEMSPLIT_API_KEY is set"
        if "demucs" in self.backend_factories:
            demucs = self.backend("demucs")
            if getattr(demucs, "available", False):
                return "demucs", "HT-Demucs weights found"
        return "local", "the built-in engine needs no key, GPU or download"

    def input_limits(self, backend_name: str) -> tuple[int, float]:
        """The tighter of the backend's and the hub's limits: (bytes, seconds)."""
        caps = self.backend(backend_name).capabilities
        max_bytes = min(x for x in (caps.max_bytes, self.settings.max_upload_bytes) if x)
        max_seconds = min(x for x in (caps.max_duration_s, self.settings.max_duration_s) if x)
        return max_bytes, max_seconds

    def start_frontend(self, name: str) -> Frontend:
        """Build the frontend ``name`` so it delivers its jobs; ``run()`` is the caller's."""
        if name in self.frontends:
            return self.frontends[name]
        factory = self.frontend_factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self.frontend_factories))
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                f"No frontend called {name!r} is installed (installed: {known}).",
            )
        frontend = factory(self)
        self.frontends[name] = frontend
        return frontend

    # hooks

    async def call_hook(self, name: str, **kwargs: Any) -> list[Any]:
        """Call a hook and await each async implementation in turn.

        Observer hooks (job events, startup/shutdown) never break the pipeline: a failing
        implementation is logged and the others still run. Policy hooks propagate their
        rejection to the caller.
        """
        caller = getattr(self.pm.hook, name)
        observer = name in OBSERVER_HOOKS
        results: list[Any] = []
        for impl in reversed(caller.get_hookimpls()):
            try:
                args = [kwargs[arg] for arg in impl.argnames]
                results.append(await await_me_maybe(impl.function(*args)))
            except StemhubError:
                if not observer:
                    raise
                log.exception("plugin %s failed in %s", impl.plugin_name, name)
            except Exception:
                if not observer:
                    raise
                log.exception("plugin %s failed in %s", impl.plugin_name, name)
        return results

    # the facade

    def _check_capabilities(self, backend_name: str, request: JobRequest) -> None:
        backend = self.backend(backend_name)
        caps = backend.capabilities
        if request.stem_set not in caps.stem_sets:
            hint = ""
            if backend_name == "local":
                hint = (
                    " Six stems need the hosted StemSplit API (set STEMSPLIT_API_KEY)"
                    " or the demucs backend."
                )
            raise RequestRejected(
                ErrorCode.UNSUPPORTED_STEM_SET,
                f"The {backend_name} backend cannot split into {request.stem_set.value}.{hint}",
            )
        if request.output_format not in caps.formats:
            raise RequestRejected(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"The {backend_name} backend cannot write {request.output_format.value}.",
            )
        source = request.source
        if source.kind is SourceKind.YOUTUBE and not caps.youtube:
            raise RequestRejected(
                ErrorCode.UNSUPPORTED_SOURCE,
                "YouTube links need the hosted StemSplit API; send the audio file instead.",
            )
        limit, _ = self.input_limits(backend_name)
        if source.size_bytes is not None and source.size_bytes > limit:
            raise RequestRejected(
                ErrorCode.FILE_TOO_LARGE,
                f"The file is {source.size_bytes / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.",
            )
        if source.kind is SourceKind.FILE and not Path(source.path or "").is_file():
            raise RequestRejected(ErrorCode.NOT_FOUND, f"There is no file at {source.path}.")

    async def submit(self, request: JobRequest) -> Job:
        """Validate, check quota, persist a QUEUED job and start it; returns at once.

        A request whose idempotency key was seen before returns the existing job.
        """
        if request.idempotency_key:
            existing = await self.store.get_job_by_idempotency_key(request.idempotency_key)
            if existing is not None:
                return existing
        backend_name, _why = self.choose_backend(request)
        self._check_capabilities(backend_name, request)
        await self.call_hook("stemhub_validate_request", hub=self, request=request)
        await self.call_hook("stemhub_check_quota", hub=self, request=request)
        job = Job(request=request, backend=backend_name)
        self._submitting.add(job.id)
        try:
            stored = await self.store.insert_job(job, owner=self.instance_id, lease_s=self.lease_s)
            if stored.id != job.id:
                return stored
            await self.call_hook("stemhub_job_created", hub=self, job=job)
            self._spawn(job)
        finally:
            self._submitting.discard(job.id)
        return job

    async def get_job(self, job_id: str) -> Job | None:
        live = self._live.get(job_id)
        if live is not None:
            return live.model_copy(deep=True)
        return await self.store.get_job(job_id)

    async def require_job(self, job_id: str) -> Job:
        job = await self.get_job(job_id)
        if job is None:
            raise StemhubError(ErrorCode.NOT_FOUND, f"There is no job {job_id}.")
        return job

    async def cancel(self, job_id: str) -> Job:
        """Stop a job; the person who asked is told (the cancel notice is delivered)."""
        job = await self.require_job(job_id)
        if job.finished:
            raise StemhubError(
                ErrorCode.CONFLICT, f"Job {job_id} already ended ({job.status.value})."
            )
        live = self._live.get(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # the live copy may know a remote id its cancelled task had no time to persist
        job = live or await self.require_job(job_id)
        if job.remote_id and job.backend:
            with contextlib.suppress(StemhubError):
                await self.backend(job.backend).cancel(job.remote_id)
        job.status = JobStatus.CANCELLED
        job.stage = Stage.DELIVER
        job.error_code = ErrorCode.JOB_CANCELLED.value
        job.error_message = "The job was cancelled."
        job.finished_at = utcnow()
        await self.store.save_job(job)
        await self.call_hook("stemhub_job_failed", hub=self, job=job)
        await self._claim_and_spawn(job)
        return job

    async def retry(self, job_id: str) -> Job:
        """Run a failed, cancelled or expired job again from the stage it needs."""
        job = await self.require_job(job_id)
        undelivered = job.status is JobStatus.COMPLETED and "error" in job.delivery
        if not undelivered and job.status not in (
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.EXPIRED,
        ):
            raise StemhubError(
                ErrorCode.CONFLICT,
                f"Only failed, cancelled, expired or undelivered jobs can be retried; "
                f"{job_id} is {job.status.value}.",
            )
        job.delivered_at = None
        if undelivered:
            # keep what the frontend already posted, so a retry sends only what is missing
            job.delivery.pop("error", None)
            job.stage = Stage.DELIVER
        else:
            job.delivery = {}
            job.stage = Stage.FETCH
            job.outputs = {}
            job.remote_id = None
            job.status = JobStatus.QUEUED
            job.error_code = job.error_message = None
            job.progress = 0.0
            job.finished_at = None
            job.attempts = 0
        await self.store.save_job(job)
        await self._claim_and_spawn(job)
        return job

    async def wait_for(
        self,
        job_id: str,
        *,
        delivered: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline is what callers want
    ) -> Job:
        """Wait until a job ended (and, by default, its delivery was recorded)."""

        async def _wait() -> Job:
            async for job in self.watch(job_id):
                done = job.stage is Stage.DONE if delivered else job.finished
                if done:
                    return job
            raise AssertionError("unreachable")

        return await asyncio.wait_for(_wait(), timeout)

    async def watch(self, job_id: str, *, poll_s: float = 0.5) -> AsyncIterator[Job]:
        """Snapshots of a job as it changes (in-process events, store polling otherwise)."""
        last: tuple[Any, ...] | None = None
        while True:
            event = self._changed.setdefault(job_id, asyncio.Event())
            job = await self.require_job(job_id)
            state = (job.status, job.stage, job.progress, job.updated_at)
            if state != last:
                last = state
                yield job
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), poll_s)

    async def refresh_links(self, job_id: str) -> Job:
        """Re-issue expired remote links of a finished job (hosted backends)."""
        job = await self.require_job(job_id)
        if job.remote_id and job.backend:
            backend = self.backend(job.backend)
            result = await backend.refresh_outputs(job.remote_id)
            for stem, output in job.outputs.items():
                fresh = result.stems.get(stem)
                if fresh is not None and fresh.url is not None:
                    output.url, output.expires_at = fresh.url, fresh.expires_at
            await self.store.save_job(job)
        return job

    async def recover(self) -> list[str]:
        """Claim and resume every unfinished job without a live hub; returns their ids."""
        resumed: list[str] = []
        for job_id in await self.store.claimable_job_ids(self.instance_id):
            if job_id in self._tasks:
                continue
            job = await self.store.get_job(job_id)
            if job is None:
                continue
            if job.stage is Stage.DELIVER and job.origin.platform not in self.frontends:
                continue
            if await self._claim_and_spawn(job):
                log.info("resumed job %s at stage %s", job_id, job.stage.value)
                resumed.append(job_id)
        return resumed

    async def cleanup_outputs(self) -> int:
        return await self.outputs.cleanup(self.store, self.settings.retention_hours * 3600)

    # running jobs

    async def _claim_and_spawn(self, job: Job) -> bool:
        """Run a job here if this hub can take its lease and does not run it already.

        A job this hub is submitting is stored already leased to it, so the recovery
        loop's claim would succeed too: ``_submitting`` keeps the loop off it. The second
        look matters: the claim awaits, and meanwhile submit may have started the job.
        """
        if job.id in self._tasks or job.id in self._submitting:
            return False
        if not await self.store.claim_job(job.id, self.instance_id, self.lease_s):
            return False
        if job.id in self._tasks or job.id in self._submitting:
            return False
        self._spawn(job)
        return True

    def _spawn(self, job: Job) -> None:
        from stemhub.pipeline import run_job

        self._live[job.id] = job

        async def _runner() -> None:
            try:
                await run_job(self, job)
            finally:
                self._tasks.pop(job.id, None)
                self._live.pop(job.id, None)
                self.notify(job)
                # a delivered job's lease went with the delivery's write
                if not self._closing and job.stage is not Stage.DONE:
                    with contextlib.suppress(Exception):
                        await self.store.release_job(job.id, self.instance_id)

        self._tasks[job.id] = asyncio.create_task(_runner(), name=f"job-{job.id}")

    def notify(self, job: Job) -> None:
        """Wake watchers of a job (progress bars, ``wait_for``)."""
        event = self._changed.pop(job.id, None)
        if event is not None:
            event.set()

    async def save(self, job: Job) -> None:
        """Persist a job's state and wake its watchers."""
        await self.store.save_job(job)
        self.notify(job)

    def work_dir_for(self, job_id: str) -> Path:
        path = self.settings.work_dir / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop_work_dir(self, job_id: str) -> None:
        shutil.rmtree(self.settings.work_dir / job_id, ignore_errors=True)

    async def _renew_leases_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.store.renew_leases(list(self._tasks), self.instance_id, self.lease_s)
            except Exception:
                log.exception("lease renewal failed; other hubs may take over these jobs")

    async def _recover_forever(self) -> None:
        while True:
            await asyncio.sleep(self.recovery_interval_s)
            try:
                await self.recover()
            except Exception:
                log.exception("recovery pass failed")

    async def _cleanup_forever(self) -> None:
        """Remove stems past the retention period; undelivered jobs keep theirs."""
        while True:
            try:
                removed = await self.cleanup_outputs()
                if removed:
                    log.info("removed the stems of %d old jobs", removed)
            except Exception:
                log.exception("output cleanup failed")
            await asyncio.sleep(self.settings.cleanup_interval_s)

    @property
    def running_jobs(self) -> int:
        return len(self._tasks)


__all__ = ["CliFrontend", "Hub", "await_me_maybe"]
