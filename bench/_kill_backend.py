"""The kill run's backend: a resumable remote service that outlives every hub.

The separation service is :mod:`bench._hub_service` in a process of its own, started once
per run, so it keeps its jobs while hubs die: a job completes ``--delay`` seconds after
``POST /jobs``, whoever asks. The backend uploads the job's file, creates the remote
job and returns its id; the hub persists that id, and a hub that resumes the job after
a crash calls :meth:`RemoteService.wait` with it (``resumable=True``), long-polling
``GET /jobs/{id}/wait`` until the service answers ``COMPLETED``. Nothing is separated:
the stems are links on the service, as the hosted API answers them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from stemhub import BackendCapabilities, StemSet, hookimpl
from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)

NAME = "killbench"


class RemoteService(Backend):
    name = NAME
    capabilities = BackendCapabilities(stem_sets=frozenset(StemSet), resumable=True)

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def start(self, task: SeparationTask) -> str:
        if task.input_path is None:
            raise ValueError("the kill-run backend needs the fetched file")
        data = task.input_path.read_bytes()
        async with self.session.post(f"{self.base_url}/upload", data=data) as uploaded:
            uploaded.raise_for_status()
            key = (await uploaded.json())["uploadKey"]
        body = {"uploadKey": key, "fileName": task.filename}
        async with self.session.post(f"{self.base_url}/jobs", json=body) as created:
            created.raise_for_status()
            remote_id: str = (await created.json())["id"]
        return remote_id

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        while True:
            url = f"{self.base_url}/jobs/{remote_id}/wait"
            async with self.session.get(url) as answer:
                answer.raise_for_status()
                if (await answer.json())["status"] == "COMPLETED":
                    break
        base = f"{self.base_url}/outputs/{remote_id}"
        extension = task.output_format.extension
        stems = {s: StemFile(stem=s, url=f"{base}/{s}.{extension}") for s in task.stems}
        return SeparationResult(stems=stems)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class KillBenchPlugin:
    def __init__(self, service_url: str) -> None:
        self.service_url = service_url

    @hookimpl
    def stemhub_register_backends(self, register: Callable[..., Any]) -> None:
        register(NAME, lambda _hub: RemoteService(self.service_url))


__all__ = ["NAME", "KillBenchPlugin", "RemoteService"]
