"""The Hub: owns the store, the backends, the frontends and the plugins; runs jobs.

``Hub.submit`` validates a request, persists a QUEUED job and returns at once; the job
then runs as an asyncio task through :mod:`stemhub.pipeline`. Every status or stage
change goes through :mod:`stemhub.lifecycle`; every plugin call through the typed facade
``hub.hooks`` (:mod:`stemhub.plugin.manager`).

Restart recovery: on open, and then every ``recovery_interval_s``, the hub claims the
lease of every unfinished job nobody holds (its hub died), re-reads it under the claim
and resumes it at its stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from stemhub import lifecycle
from stemhub._sealing import Sealer
from stemhub._store import Store
from stemhub.config import Settings
from stemhub.errors import ErrorCode, RequestRejected, StaleJob, StemhubError
from stemhub.frontend import Frontend
from stemhub.models import (
    BackendCapabilities,
    Job,
    JobRequest,
    JobStatus,
    Output,
    SourceKind,
    Stage,
    utcnow,
)
from stemhub.outputs import OutputStore
from stemhub.plugin.api import KeyValue, PluginHub
from stemhub.plugin.manager import Hooks, StemhubPluginManager, get_plugin_manager
from stemhub.plugin.spec import BackendFactory, ConfigCheck, FrontendFactory, ReadyCheck
from stemhub.plugin.state import NamespacedKV
from stemhub.scheduling import FairSlots, tenant_of
from stemhub.waiting import wait_event

if TYPE_CHECKING:
    from stemhub.backends.base import Backend
    from stemhub.outbox import Attempt, DeliveryLimits, Outbox
    from stemhub.rate_windows import RateCounter, RateWindow
    from stemhub.retry import RetryPolicy

log = logging.getLogger(__name__)

OutputRemover = Callable[[Job], Awaitable[object]]
"""Removes what a job stored outside the hub's folder (objects in a bucket)."""
BackendWrapper = Callable[[str, "Backend"], "Backend"]
"""Puts a backend behind something (a queue to worker processes): ``(name, backend)``."""


class CliFrontend(Frontend):
    """The shell: the command that submitted the job waits for it, so delivery is a no-op."""

    name = "cli"

    async def deliver(self, job: Job) -> None:
        return None


class Hub:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pm: StemhubPluginManager | None = None,
        plugins: str | Iterable[str] | None = None,
        recover: bool = True,
        lease_s: float | None = None,
        recovery_interval_s: float | None = None,
        frontends: Iterable[str] = (),
    ) -> None:
        self.settings = settings or Settings()
        self.pm = pm or get_plugin_manager(only=plugins)
        self.instance_id = uuid.uuid4().hex[:16]
        self.lease_s = lease_s if lease_s is not None else self.settings.lease_s
        self.recovery_interval_s = (
            recovery_interval_s
            if recovery_interval_s is not None
            else self.settings.recovery_interval_s
        )
        self.hooks = Hooks(self.pm, self)
        self._recover_on_open = recover
        self._frontends_to_start = list(frontends)
        self.store: Store
        self.outputs: OutputStore
        self.sealer: Sealer
        self._http_outputs: OutputStore
        """Signs links for clients of the HTTP app, on ``settings.http_url``."""
        self._rate_counter: RateCounter | None = None
        self.backend_factories: dict[str, BackendFactory] = {}
        self._backend_choice: dict[str, tuple[int, ReadyCheck | None]] = {}
        self.frontend_factories: dict[str, FrontendFactory] = {"cli": CliFrontend}
        self.frontend_checks: dict[str, ConfigCheck] = {}
        """What ``stemhub doctor`` asks a frontend, without building it (``register(check=)``)."""
        self._backends: dict[str, Backend] = {}
        self.frontends: dict[str, Frontend] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Job] = {}
        # submitted here, stored already leased to this hub, not spawned yet
        self._submitting: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self._background: list[asyncio.Task[None]] = []
        self._output_removers: list[OutputRemover] = []
        self._backend_wrappers: list[BackendWrapper] = []
        # held while a job fetches or starts its separation, not while it waits on a
        # backend: a hub can have thousands of remote jobs in flight. Handed out in
        # round-robin across tenants, so one tenant's burst never blocks another's job.
        self.work_slots = FairSlots(self.settings.concurrency, fair=self.settings.fair_scheduling)
        # deliveries have slots of their own: a finished job (someone waits for it) must
        # not queue behind a burst of jobs that are only starting
        self.delivery_slots = asyncio.Semaphore(self.settings.concurrency)
        self._separation_slots: dict[str, FairSlots] = {}
        # probes share the default executor with every other to_thread call (file reads
        # and writes of uploads and downloads); a burst of jobs must not queue thousands
        # of probes in front of those
        self.probe_slots = FairSlots(os.cpu_count() or 1, fair=self.settings.fair_scheduling)
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
        self._http_outputs = OutputStore(
            settings.resolved_output_dir,
            signing_key,
            public_url=settings.http_url,
            link_ttl_s=settings.link_ttl_s,
        )
        self.store = await Store.open(settings.resolved_database_url)
        self.hooks.register_backends(self._register_backend)
        self.hooks.register_frontends(self._register_frontend)
        self.frontends["cli"] = CliFrontend(self)
        for name in self._frontends_to_start:
            self.start_frontend(name)
        self._opened = True
        await self.hooks.startup()
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
            await self.hooks.shutdown()
        for frontend in list(self.frontends.values()):
            with contextlib.suppress(Exception):
                await frontend.close()
        for backend in list(self._backends.values()):
            with contextlib.suppress(Exception):
                await backend.close()
        if self._rate_counter is not None:
            with contextlib.suppress(Exception):
                await self._rate_counter.close()  # the counts of the last half second
        await self.store.close()
        self._opened = False

    # registries

    def _register_backend(
        self,
        name: str,
        factory: BackendFactory,
        *,
        priority: int = 0,
        ready: ReadyCheck | None = None,
    ) -> None:
        self.backend_factories[name] = factory
        self._backend_choice[name] = (priority, ready)

    def _register_frontend(
        self, name: str, factory: FrontendFactory, *, check: ConfigCheck | None = None
    ) -> None:
        self.frontend_factories[name] = factory
        if check is not None:
            self.frontend_checks[name] = check

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
            backend = factory(self)
            for wrap in self._backend_wrappers:
                backend = wrap(name, backend)
            self._backends[name] = backend
        return self._backends[name]

    def add_backend_wrapper(self, wrap: BackendWrapper) -> None:
        """From now on every backend is used through ``wrap(name, backend)``.

        The cluster plugin puts each backend behind a queue this way. Backends built
        already are wrapped at once, so the order of startup hooks does not matter.
        """
        self._backend_wrappers.append(wrap)
        self._backends = {name: wrap(name, built) for name, built in self._backends.items()}

    def choose_backend(self, request: JobRequest) -> tuple[str, str]:
        """The backend for a request and why it was picked (the CLI says both).

        Asked for by name, or configured, wins. Otherwise the backends that are ready
        (``ready(hub)`` gives a reason) are tried by priority, and the first whose
        capabilities cover the request is picked; when none covers it, the first ready
        one is named, so the refusal says what that backend cannot do.
        """
        if request.backend:
            return request.backend.lower(), "asked for"
        configured = self.settings.default_backend
        if configured != "auto":
            return configured, "set as STEMHUB_DEFAULT_BACKEND"
        ready: list[tuple[str, str]] = []
        for name, (_priority, check) in sorted(
            self._backend_choice.items(), key=lambda item: -item[1][0]
        ):
            reason = check(self) if check is not None else None
            if reason is not None:
                ready.append((name, reason))
        for name, reason in ready:
            if self._covers(name, request):
                return name, reason
        if ready:
            return ready[0]
        raise StemhubError(
            ErrorCode.CONFIG_MISSING,
            "No separation backend is ready on this hub.",
            operator_message="Install stemhub with its builtin backends, or set "
            "STEMHUB_DEFAULT_BACKEND to an installed backend.",
        )

    def _covers(self, name: str, request: JobRequest) -> bool:
        caps = self.backend(name).capabilities
        if request.stem_set not in caps.stem_sets or request.output_format not in caps.formats:
            return False
        return request.source.kind is not SourceKind.YOUTUBE or caps.youtube

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
            from stemhub.fetch import format_bytes

            raise RequestRejected(
                ErrorCode.FILE_TOO_LARGE,
                f"The file is {format_bytes(source.size_bytes)}; "
                f"the limit is {format_bytes(limit)}.",
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
        await self.hooks.validate_request(request)
        await self.hooks.check_quota(request)
        job = Job(request=request, backend=backend_name)
        self._submitting.add(job.id)
        try:
            stored = await self.store.insert_job(job, owner=self.instance_id, lease_s=self.lease_s)
            if stored.id != job.id:
                return stored
            await self.hooks.job_created(job)
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
            # asyncio.wait: the task's own end (cancelled, failed) is not raised here,
            # while a cancel of this caller still is (suppressing CancelledError would eat it)
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # retrieved (a job task reports its own failures)
        # the stored copy is the newest; the live one may know a remote id its
        # cancelled task had no time to persist
        job = await self.require_job(job_id)
        if job.finished:
            raise StemhubError(
                ErrorCode.CONFLICT, f"Job {job_id} already ended ({job.status.value})."
            )
        remote_id = job.remote_id or (live.remote_id if live is not None else None)
        if remote_id and job.backend:
            with contextlib.suppress(StemhubError):
                await self.backend(job.backend).cancel(remote_id)
        await lifecycle.cancel(self, job)
        await self.hooks.job_failed(job)
        await self._claim_and_spawn(job.id)
        return job

    async def retry(self, job_id: str) -> Job:
        """Run a failed, cancelled or expired job again, or deliver an undelivered one."""
        job = await self.require_job(job_id)
        if job.id in self._tasks:
            raise StemhubError(ErrorCode.CONFLICT, f"Job {job_id} is running.")
        await lifecycle.reopen(self, job)
        await self._claim_and_spawn(job.id)
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

        async with asyncio.timeout(timeout):
            return await _wait()

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
            await wait_event(event, poll_s)

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
            if job_id in self._tasks or job_id in self._submitting:
                continue
            if await self._claim_and_spawn(job_id):
                resumed.append(job_id)
        return resumed

    def add_output_remover(self, remover: OutputRemover) -> None:
        """Also run ``remover(job)`` when retention removes a job's stems (object storage)."""
        self._output_removers.append(remover)

    async def cleanup_outputs(self) -> int:
        """Remove the stems of delivered jobs past the retention; each job becomes EXPIRED.

        An undelivered job keeps its stems whatever its age. Several hubs may run this at
        once: removing is idempotent, and the expiry write of the slower one is stale.
        """
        cutoff = utcnow() - timedelta(hours=self.settings.retention_hours)
        expired = 0
        for job in await self.store.jobs_past_retention(cutoff):
            self.outputs.remove(job.id)
            for remover in self._output_removers:
                await remover(job)
            try:
                await lifecycle.expire(self, job)
            except StaleJob:
                continue
            expired += 1
        return expired

    # running jobs

    async def _claim_and_spawn(self, job_id: str) -> bool:
        """Claim a job, re-read it under the claim, and run that copy here.

        A job this hub is submitting is stored already leased to it, so the recovery
        loop's claim would succeed too: ``_submitting`` keeps the loop off it. The second
        look matters: the claim awaits, and meanwhile submit may have started the job.
        A job whose delivery ended is never claimed; one whose delivery waits for a
        frontend this hub does not run is left for a hub that runs it.
        """
        if job_id in self._tasks or job_id in self._submitting:
            return False
        job = await self.store.claim_and_read(job_id, self.instance_id, self.lease_s)
        if job is None:
            return False
        if job_id in self._tasks or job_id in self._submitting:
            return False
        if job.stage is Stage.DELIVER and job.origin.platform not in self.frontends:
            await self.store.release_job(job_id, self.instance_id)
            return False
        log.info("running job %s from stage %s", job_id, job.stage.value)
        self._spawn(job)
        return True

    def _spawn(self, job: Job) -> None:
        from stemhub.pipeline import run_job

        self._live[job.id] = job

        async def _runner() -> None:
            try:
                await run_job(self, job)
            except Exception:
                log.exception(
                    "job %s stopped at stage %s; recovery takes it up again",
                    job.id,
                    job.stage.value,
                )
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

    async def save(self, job: Job, *, release: bool = False, notify: bool = True) -> None:
        """Persist a job's state (guarded: StaleJob for an overtaken copy), wake watchers."""
        await self.store.save_job(job, release=release)
        if notify:
            self.notify(job)

    def fair_slot(self, job: Job) -> contextlib.AbstractAsyncContextManager[None]:
        """A work slot, handed out in round-robin across the tenants of waiting jobs."""
        return self.work_slots.slot(tenant_of(job.origin), holder=job.id)

    def separation_turn(
        self, job: Job, backend: Backend
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """A turn on a backend that runs few separations at once (the local engine).

        Held for the whole separation, handed out in round-robin across tenants: the
        engine's own queue is first come, first served, so without this one tenant's
        burst would sit in front of everybody. Remote backends need no turn.
        """
        limit = backend.capabilities.concurrency
        if limit is None:
            return contextlib.nullcontext()
        name = job.backend or backend.name
        slots = self._separation_slots.get(name)
        if slots is None:
            slots = self._separation_slots[name] = FairSlots(
                limit, fair=self.settings.fair_scheduling
            )
        return slots.slot(tenant_of(job.origin), holder=job.id)

    def queue_position(self, job_id: str) -> int | None:
        """Jobs this hub starts before this one while it waits for a work slot or for its
        backend's turn; None when it waits for neither here."""
        for slots in (self.work_slots, *self._separation_slots.values()):
            position = slots.position(job_id)
            if position is not None:
                return position
        return None

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

    # the interface plugins get (stemhub.plugin.api.PluginHub)

    @property
    def public_url(self) -> str | None:
        return self.outputs.public_url

    @property
    def http_url(self) -> str:
        return self.settings.http_url

    async def job_by_idempotency_key(self, key: str) -> Job | None:
        return await self.store.get_job_by_idempotency_key(key)

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        platform: str | None = None,
        user_id: str | None = None,
        api_key_id: str | None = None,
        undelivered: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Job]:
        return await self.store.list_jobs(
            statuses=statuses,
            platform=platform,
            user_id=user_id,
            api_key_id=api_key_id,
            undelivered=undelivered,
            limit=limit,
            offset=offset,
        )

    async def count_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        api_key_id: str | None = None,
        undelivered: bool = False,
    ) -> int:
        return await self.store.count_jobs(
            statuses=statuses, api_key_id=api_key_id, undelivered=undelivered
        )

    async def count_by_status(self) -> dict[str, int]:
        return await self.store.count_by_status()

    async def record_delivery(self, job: Job) -> None:
        """Persist ``job.delivery``; a copy of a job running here goes through the live job.

        Frontends often hold a copy (``get_job`` hands out deep copies): writing the copy
        whole would overtake the pipeline's own object and stop it with StaleJob, so the
        delivery record is moved onto the live job and that one is written.
        """
        live = self._live.get(job.id)
        if live is not None and live is not job:
            live.delivery = copy.deepcopy(job.delivery)
            await self.save(live)
            job.version = live.version
            return
        await self.save(job)

    def links(
        self, job: Job, *, ttl_s: int | None = None, http_clients: bool = False
    ) -> dict[str, tuple[str, datetime]]:
        outputs = self._http_outputs if http_clients else self.outputs
        return outputs.output_links(job, ttl_s=ttl_s)

    def output_path(self, job: Job, output: Output) -> Path | None:
        return self.outputs.path_of(job, output)

    def result_page_url(self, job: Job, *, ttl_s: int | None = None) -> str | None:
        from stemhub import web

        return web.result_page_url(self.outputs, job.id, ttl_s=ttl_s)

    def waveform_png(self, job: Job) -> Path | None:
        from stemhub import web

        return web.waveform_png(self.outputs, job.id)

    def waveform_png_url(self, job: Job, *, ttl_s: int | None = None) -> str | None:
        from stemhub import web

        return web.waveform_png_url(self.outputs, job.id, ttl_s=ttl_s)

    def capabilities(self, backend: str) -> BackendCapabilities:
        return self.backend(backend).capabilities

    def frontend(self, name: str) -> Frontend | None:
        return self.frontends.get(name)

    def kv(self, namespace: str) -> KeyValue:
        return NamespacedKV(self.store, namespace)

    async def take_quota(
        self, scope: str, subject: str, *, limit: int, window_s: float
    ) -> float | None:
        return await self.store.take_quota(scope, subject, limit=limit, window_s=window_s)

    async def hit_rate_window(self, subject: str, *, limit: int, window_s: float) -> RateWindow:
        if self._rate_counter is None:
            from stemhub.rate_windows import RateCounter

            self._rate_counter = RateCounter(self.store)
        return await self._rate_counter.hit(subject, limit=limit, window_s=window_s)

    def outbox(
        self,
        *,
        retry: RetryPolicy | None = None,
        limits: DeliveryLimits | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> Outbox:
        from stemhub.fetch import FetchPolicy
        from stemhub.outbox import WEBHOOK_RETRY, Outbox

        return Outbox(
            self.store,
            self.sealer,
            FetchPolicy.from_settings(self.settings),
            retry=retry or WEBHOOK_RETRY,
            limits=limits,
            lease_s=self.lease_s,
            recovery_interval_s=self.recovery_interval_s,
            on_attempt=on_attempt,
        )

    def seal(self, plaintext: str, *, purpose: str) -> str:
        return self.sealer.seal(plaintext, purpose=purpose)

    def unseal(self, sealed: str, *, purpose: str) -> str:
        return self.sealer.open(sealed, purpose=purpose)

    def derive_key(self, purpose: str) -> bytes:
        key = self.settings.resolved_signing_key()
        return hmac.new(key, b"stemhub-derived-key\x00" + purpose.encode(), "sha256").digest()

    def check_outbound_url(self, url: str) -> None:
        from stemhub.fetch import FetchPolicy, check_url

        check_url(url, FetchPolicy.from_settings(self.settings))

    def work_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a folder name: {name!r}")
        path = self.settings.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


if TYPE_CHECKING:

    def _plugins_get_a_plugin_hub(hub: Hub) -> PluginHub:
        """mypy checks here that the Hub offers everything PluginHub promises."""
        return hub


__all__ = ["CliFrontend", "Hub"]
