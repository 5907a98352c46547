"""The coalescing progress editor: no progress line lands on top of a result."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from stemhub_discord.progress import ProgressEditor

from stemhub import Job, JobRequest, JobStatus, Source, SourceKind, Stage


def _job(progress: float = 0.0) -> Job:
    source = Source(kind=SourceKind.URL, url="https://cdn.example/song.mp3")
    return Job(request=JobRequest(source=source), progress=progress)


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.edited = asyncio.Event()

    async def edit(self, job: Job, text: str) -> None:
        self.lines.append(text)
        self.edited.set()


def _editor(recorder: Recorder) -> ProgressEditor:
    return ProgressEditor(
        interval_s=0.0,
        render=lambda job: f"{job.status.value} {job.progress:.0f}%",
        edit=recorder.edit,
        recheck_s=0.01,
    )


async def test_a_hook_that_reports_after_delivery_began_edits_nothing() -> None:
    recorder = Recorder()
    editor = _editor(recorder)
    job = _job()
    editor.update(job)
    await asyncio.wait_for(recorder.edited.wait(), 5)
    failed = job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "stage": Stage.DELIVER,
            "updated_at": job.updated_at + timedelta(seconds=1),
        }
    )
    await editor.finish(failed)
    edits_at_finish = len(recorder.lines)
    # a job_failed observer that ran late: the same state, or an older one
    editor.update(failed)
    editor.update(job)
    await asyncio.sleep(0.1)  # the editor would have run several times by now
    assert len(recorder.lines) == edits_at_finish
    await editor.close()


async def test_a_retried_job_gets_progress_again() -> None:
    recorder = Recorder()
    editor = _editor(recorder)
    job = _job()
    await editor.finish(job)
    retried = job.model_copy(
        update={"progress": 5.0, "updated_at": job.updated_at + timedelta(seconds=5)}
    )
    editor.update(retried)
    await asyncio.wait_for(recorder.edited.wait(), 5)
    assert recorder.lines == ["QUEUED 5%"]
    await editor.close()
