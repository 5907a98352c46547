"""A hub process for the SIGKILL recovery tests: ``python -m tests.core._recovery_app``.

Its backend stands for a remote service that keeps working while the hub is dead: the
job finishes ``JOB_SECONDS`` after ``start`` was called, whoever asks. Every ``start``
and every delivery is appended to a log file so the parent test can count them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from stemhub import hookimpl
from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.frontend import Frontend
from stemhub.hub import Hub
from stemhub.models import BackendCapabilities, Job, JobRequest, Origin, Source, StemSet
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings

JOB_SECONDS = 1.5


class RemoteLikeBackend(Backend):
    name = "remote-like"

    def __init__(self, log_dir: Path, resumable: bool) -> None:
        self.log_dir = log_dir
        self.capabilities = BackendCapabilities(stem_sets=frozenset(StemSet), resumable=resumable)

    async def start(self, task: SeparationTask) -> str:
        remote_id = f"r{time.time_ns()}"
        with (self.log_dir / "starts.log").open("a") as log:
            log.write(json.dumps({"remote_id": remote_id, "t": time.time()}) + "\n")
        return remote_id

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        started = int(remote_id[1:]) / 1e9
        while (left := started + JOB_SECONDS - time.time()) > 0:
            await progress(100 * (1 - left / JOB_SECONDS))
            await asyncio.sleep(min(left, 0.1))
        stems = {}
        for stem in task.stems:
            target = task.out_dir / f"{stem}.wav"
            assert task.input_path is not None
            shutil.copyfile(task.input_path, target)
            stems[stem] = StemFile(stem=stem, path=target)
        return SeparationResult(stems=stems, bpm=100.0, key="C major")


class RecorderFrontend(Frontend):
    name = "recorder"
    log_dir: Path
    deliver_seconds = 0.0

    async def deliver(self, job: Job) -> None:
        await asyncio.sleep(self.deliver_seconds)
        with (self.log_dir / "deliveries.log").open("a") as log:
            log.write(job.id + "\n")


class Plugin:
    def __init__(self, log_dir: Path, resumable: bool, deliver_seconds: float) -> None:
        self.log_dir = log_dir
        self.resumable = resumable
        RecorderFrontend.log_dir = log_dir
        RecorderFrontend.deliver_seconds = deliver_seconds

    @hookimpl
    def stemhub_register_backends(self, register: Any) -> None:
        register("remote-like", lambda _hub: RemoteLikeBackend(self.log_dir, self.resumable))

    @hookimpl
    def stemhub_register_frontends(self, register: Any) -> None:
        register("recorder", RecorderFrontend)


async def main(data_dir: Path, action: str, resumable: bool, deliver_seconds: float) -> None:
    settings = make_settings(data_dir, default_backend="remote-like")
    plugin = Plugin(data_dir, resumable, deliver_seconds)
    pm = get_plugin_manager(only=(), extra=[("recovery-test", plugin)])
    hub = Hub(settings, pm=pm, lease_s=1.0, recovery_interval_s=0.3, frontends=["recorder"])
    await hub.open()
    if action == "submit":
        request = JobRequest(
            source=Source(kind="file", path=str(data_dir / "input.wav")),
            stems=StemSet.BOTH,
            origin=Origin(platform="recorder", user_id="u"),
        )
        job = await hub.submit(request)
        print(job.id, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(
        main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "resumable", float(sys.argv[4]))
    )
