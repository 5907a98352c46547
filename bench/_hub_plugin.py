"""The hub side of the hub-overhead benchmark: a backend and a frontend for the fake service.

The backend streams the job's file to ``POST /upload`` in chunks (the file never sits
in memory whole), creates the job, and learns of completions from the service's one
``GET /events`` stream, the way a webhook subscription tells a hub at scale: thousands
of waiting jobs cost a future each, not a connection each. The frontend "posts the
result" with ``POST /deliver`` to a second service process that stands for the chat
platform.

Both speak aiohttp, as discord.py and slack-bolt's async apps do. (httpx was measured
first: with thousands of requests queued on one ``AsyncClient`` its connection pool
spends time proportional to the queue on every request, so the client, not the hub,
set the figures.)

Both write their timestamps into a :class:`Timeline` so the run can tell, per job, how
long the hub took between the backend's answer (``wait`` returning) and the delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO

import aiohttp

from stemhub import hookimpl
from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.errors import ErrorCode, StemhubError
from stemhub.frontend import Frontend
from stemhub.hub import Hub
from stemhub.models import BackendCapabilities, Job, JobStatus, StemSet

CHUNK_BYTES = 256 * 1024


@dataclass
class Timeline:
    """Per-job timestamps (``time.perf_counter``), keyed by hub job id."""

    submitted: dict[str, float] = field(default_factory=dict)
    completed: dict[str, float] = field(default_factory=dict)
    handed_over: dict[str, float] = field(default_factory=dict)
    delivered: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    expected: int = 0
    all_delivered: asyncio.Event = field(default_factory=asyncio.Event)

    def deliver(self, job: Job) -> None:
        self.delivered[job.id] = time.perf_counter()
        if job.status is not JobStatus.COMPLETED:
            self.failures[job.id] = f"{job.error_code}: {job.error_message}"
        if len(self.delivered) >= self.expected:
            self.all_delivered.set()


async def _read_chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
        yield chunk


class Completions:
    """One streamed ``GET /events`` connection fanned out to a future per remote job."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.early: set[str] = set()
        self.listening = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def ensure_listening(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        await self.listening.wait()

    async def _read(self) -> None:
        forever = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get("/events", timeout=forever) as response:
            response.raise_for_status()
            self.listening.set()
            async for raw in response.content:
                remote_id = raw.decode().strip()
                if not remote_id or remote_id.startswith(":"):
                    continue
                future = self.waiting.pop(remote_id, None)
                if future is None:
                    self.early.add(remote_id)
                elif not future.done():
                    future.set_result(None)

    async def wait(self, remote_id: str) -> None:
        if remote_id in self.early:
            self.early.discard(remote_id)
            return
        future = self.waiting.setdefault(remote_id, asyncio.get_running_loop().create_future())
        await future

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self._reader


class ServiceBackend(Backend):
    """Separates nothing: hands the file to the fake service and waits for its answer."""

    name = "bench"

    def __init__(self, session: aiohttp.ClientSession, timeline: Timeline) -> None:
        self.session = session
        self.timeline = timeline
        self.completions = Completions(session)
        # open a file only once a connection can take it: thousands of jobs waiting for
        # one of the session's connections would otherwise each hold an open file
        self.uploads = asyncio.Semaphore(session.connector.limit if session.connector else 64)
        self.capabilities = BackendCapabilities(stem_sets=frozenset(StemSet), resumable=False)

    async def start(self, task: SeparationTask) -> str:
        if task.input_path is None:
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The bench backend needs a file.")
        await self.completions.ensure_listening()
        async with self.uploads:
            with task.input_path.open("rb") as handle:
                async with self.session.post("/upload", data=_read_chunks(handle)) as uploaded:
                    uploaded.raise_for_status()
                    upload_key = (await uploaded.json())["uploadKey"]
        body = {"uploadKey": upload_key, "fileName": task.filename}
        async with self.session.post("/jobs", json=body) as created:
            created.raise_for_status()
            remote_id: str = (await created.json())["id"]
        return remote_id

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        await self.completions.wait(remote_id)
        base = f"/outputs/{remote_id}"
        stems = {
            stem: StemFile(stem=stem, url=f"{base}/{stem}.{task.output_format.extension}")
            for stem in task.stems
        }
        self.timeline.completed[task.job_id] = time.perf_counter()
        return SeparationResult(stems=stems)

    async def close(self) -> None:
        await self.completions.close()


class ServiceFrontend(Frontend):
    """Posts each finished job to the fake service, as a chat frontend posts a message."""

    name = "bench"

    def __init__(self, hub: Hub, session: aiohttp.ClientSession, timeline: Timeline) -> None:
        super().__init__(hub)
        self.session = session
        self.timeline = timeline

    async def deliver(self, job: Job) -> None:
        self.timeline.handed_over.setdefault(job.id, time.perf_counter())
        links = {stem: output.url for stem, output in job.outputs.items()}
        async with self.session.post("/deliver", json={"job": job.id, "stems": links}) as posted:
            posted.raise_for_status()
        self.timeline.deliver(job)


class ServicePlugin:
    """Registers the bench backend and frontend, each with its own session, as in real life
    (a backend talks to its API, a frontend to its chat platform: separate pools)."""

    def __init__(
        self,
        backend_session: aiohttp.ClientSession,
        frontend_session: aiohttp.ClientSession,
        timeline: Timeline,
    ) -> None:
        self.backend_session = backend_session
        self.frontend_session = frontend_session
        self.timeline = timeline

    @hookimpl
    def stemhub_register_backends(self, register: Callable[..., None]) -> None:
        register("bench", lambda _hub: ServiceBackend(self.backend_session, self.timeline))

    @hookimpl
    def stemhub_register_frontends(self, register: Callable[..., None]) -> None:
        register("bench", lambda hub: ServiceFrontend(hub, self.frontend_session, self.timeline))


__all__ = ["ServiceBackend", "ServiceFrontend", "ServicePlugin", "Timeline"]
