"""The ``local`` backend: the embedded engine behind the hub's backend protocol.

Separation is CPU work of seconds to minutes, so it runs in a process pool (forkserver
where the platform has it, else spawn; ``separate_concurrency`` workers) and the hub's
event loop only polls: every quarter second it reads the job's progress from the shared
:class:`~stemhub.backends.local.worker.Control` and forwards it. Cancelling sets the
control's flag; the worker checks it at every checkpoint (a fraction of a second apart)
and stops, removing its partial files.

Engine ids live in this process only, so the backend is not ``resumable``: after a hub
restart the job is simply started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.backends.local import WEIGHTS_FILE
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import BackendCapabilities, OutputFormat, Quality, StemSet

if TYPE_CHECKING:
    from stemhub.backends.local import worker
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

POLL_S = 0.25
CANCEL_GRACE_S = 2.0
"""How long :meth:`LocalBackend.cancel` waits for the worker to acknowledge."""

WORKER = "stemhub.backends.local.worker"
"""The engine's side of the pool, imported with the first separation: a hub that only
describes the backend or sends its jobs elsewhere (``stemhub doctor``) never loads it."""

SUPPORTED = frozenset({StemSet.VOCALS, StemSet.INSTRUMENTAL, StemSet.BOTH, StemSet.FOUR_STEMS})


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver (fast forks of a clean, preloaded server) where available, else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # the watch first: a forkserver whose hub died exits (parent_watch)
        context.set_forkserver_preload(["stemhub.backends._forkserver_watch", WORKER])
        return context
    return multiprocessing.get_context("spawn")


@dataclass
class _Running:
    future: Future[worker.WorkReport]
    control: worker.Control
    task: SeparationTask


class LocalBackend(Backend):
    """Separates on this machine's CPU with no API key and nothing to download."""

    name: ClassVar[str] = "local"
    capabilities = BackendCapabilities(
        stem_sets=SUPPORTED,
        formats=frozenset(OutputFormat),
        analysis=True,
        resumable=False,
    )

    def __init__(self, hub: Hub) -> None:
        settings = hub.settings
        self.capabilities = self.capabilities.model_copy(
            update={"concurrency": settings.separate_concurrency}
        )
        self.workers = settings.separate_concurrency
        self.threads = max(1, min(4, os.cpu_count() or 1))
        self.control_dir = settings.work_dir / "local-engine"
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[str, _Running] = {}

    def _executor(self) -> ProcessPoolExecutor:
        from stemhub.backends.local import worker

        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=_pool_context(),
                initializer=worker.warm_up,
            )
        return self._pool

    async def start(self, task: SeparationTask) -> str:
        if task.stem_set not in SUPPORTED:
            raise StemhubError(
                ErrorCode.UNSUPPORTED_STEM_SET,
                f"The local engine cannot split into {task.stem_set.value}. Six stems need the "
                "hosted StemSplit API (set STEMSPLIT_API_KEY) or the demucs backend.",
            )
        if task.input_path is None:
            raise StemhubError(
                ErrorCode.UNSUPPORTED_SOURCE,
                "The local engine needs the audio file itself; send the file, not a link.",
            )
        # the engine (numpy, scipy: a second of CPU) loads with the first separation, off
        # the event loop, so a cancel or Ctrl-C meanwhile is heard before anything starts
        worker = await asyncio.to_thread(importlib.import_module, WORKER)
        engine_id = f"local-{uuid.uuid4().hex}"
        control = worker.Control(self.control_dir / f"{engine_id}.ctl", create=True)
        task.out_dir.mkdir(parents=True, exist_ok=True)
        order = worker.WorkOrder(
            input_path=task.input_path,
            out_dir=task.out_dir,
            stems=task.stems,
            output_format=task.output_format,
            control_path=control.path,
            threads=self.threads,
            spatial=task.quality is not Quality.FAST,
        )
        # starting worker processes can take a while: keep it off the event loop
        future = await asyncio.to_thread(self._submit, order)
        self._running[engine_id] = _Running(future, control, task)
        return engine_id

    def _submit(self, order: worker.WorkOrder) -> Future[worker.WorkReport]:
        from stemhub.backends.local import worker

        try:
            return self._executor().submit(worker.run, order)
        except BrokenProcessPool:
            self._pool = None
            return self._executor().submit(worker.run, order)

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        running = self._running.get(remote_id)
        if running is None:
            # an id from before a restart: the work died with the old process
            remote_id = await self.start(task)
            running = self._running[remote_id]
        wrapped = asyncio.wrap_future(running.future)
        reported = -1.0
        try:
            while True:
                done, _ = await asyncio.wait({wrapped}, timeout=POLL_S)
                percent = round(100.0 * running.control.progress, 1)
                if percent != reported and not done:
                    reported = percent
                    await progress(percent, "separating")
                if done:
                    break
            report = wrapped.result()
        except asyncio.CancelledError:
            running.control.cancel()
            # forget the job once the worker has noticed, even if nobody calls cancel()
            loop = asyncio.get_running_loop()

            def later(_future: Future[worker.WorkReport]) -> None:
                with contextlib.suppress(RuntimeError):  # the loop may be closed by then
                    loop.call_soon_threadsafe(self._forget, remote_id)

            running.future.add_done_callback(later)
            raise
        except BrokenProcessPool as exc:
            self._pool = None
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The local engine stopped unexpectedly; try again, or a shorter file.",
                retryable=True,
                operator_message=f"engine worker died: {exc}",
            ) from exc
        except Exception as exc:
            # a bug in the engine: keep its traceback in the log, tell the user plainly
            log.exception("local engine failed on job %s", task.job_id)
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The local engine failed on this file.",
                operator_message=f"{type(exc).__name__}: {exc}",
            ) from exc
        finally:
            if running.future.done():
                self._forget(remote_id)
        result = self._result(report)
        await progress(100.0, "separated")
        return result

    def _result(self, report: worker.WorkReport) -> SeparationResult:
        if report.cancelled:
            raise StemhubError(ErrorCode.JOB_CANCELLED, "The job was cancelled.")
        if report.error is not None:
            code, message, operator = report.error
            raise StemhubError(code, message, operator_message=operator)
        stems = {
            stem: StemFile(stem=stem, path=path, size_bytes=size, duration_s=duration)
            for stem, (path, size, duration) in report.stems.items()
        }
        return SeparationResult(
            stems=stems, bpm=report.bpm, key=report.key, raw={"seconds": report.seconds}
        )

    def _forget(self, engine_id: str) -> None:
        running = self._running.pop(engine_id, None)
        if running is not None:
            running.control.remove()

    async def cancel(self, remote_id: str) -> None:
        """Ask the worker to stop and wait (briefly) until it has."""
        running = self._running.get(remote_id)
        if running is None:
            return
        running.control.cancel()
        with contextlib.suppress(TimeoutError, BrokenProcessPool):
            await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(running.future)), CANCEL_GRACE_S
            )
        if running.future.done():
            self._forget(remote_id)

    async def describe(self) -> dict[str, Any]:
        return {
            "engine": "built-in masks (features + small model), numpy/scipy",
            "model": str(WEIGHTS_FILE.name),
            "model_bytes": WEIGHTS_FILE.stat().st_size if WEIGHTS_FILE.exists() else None,
            "workers": self.workers,
            "threads_per_job": self.threads,
            "running": len(self._running),
        }

    async def close(self) -> None:
        for running in self._running.values():
            running.control.cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        for engine_id in list(self._running):
            self._forget(engine_id)


__all__ = ["SUPPORTED", "LocalBackend"]
