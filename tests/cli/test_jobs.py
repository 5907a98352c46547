"""``jobs list`` shows short ids; ``jobs show`` takes them, or any unique prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from stemhub._store import Store
from stemhub.cli import app
from stemhub.config import Settings
from stemhub.models import Job, JobRequest, Source, SourceKind


def _store_jobs(*ids: str) -> None:
    async def insert() -> None:
        store = await Store.open(Settings().resolved_database_url)
        try:
            for job_id in ids:
                source = Source(kind=SourceKind.FILE, path=f"/music/{job_id}.wav")
                await store.insert_job(Job(id=job_id, request=JobRequest(source=source)))
        finally:
            await store.close()

    asyncio.run(insert())


def test_jobs_show_takes_the_id_jobs_list_shows(cli: CliRunner, home: Path) -> None:
    _store_jobs("abcdef0123456789" * 2, "abcdef9876543210" * 2)

    listed = cli.invoke(app, ["jobs", "list"])
    shown_id = next(line.split()[1] for line in listed.output.splitlines() if "abcdef01" in line)
    shown = cli.invoke(app, ["jobs", "show", shown_id])

    assert shown.exit_code == 0, shown.output
    assert '"id": "' + "abcdef0123456789" * 2 + '"' in shown.output


def test_an_ambiguous_prefix_is_a_clear_error(cli: CliRunner, home: Path) -> None:
    _store_jobs("abcdef0123456789" * 2, "abcdef9876543210" * 2)

    result = cli.invoke(app, ["jobs", "show", "abcdef"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error INVALID_REQUEST: abcdef matches several jobs")
    assert "abcdef012345" in result.stderr and "abcdef987654" in result.stderr


def test_an_unknown_id_is_not_found(cli: CliRunner, home: Path) -> None:
    result = cli.invoke(app, ["jobs", "show", "deadbeef"])
    assert result.exit_code == 2
    assert result.stderr == "error NOT_FOUND: There is no job deadbeef.\n"


def test_jobs_list_undelivered_shows_only_jobs_whose_delivery_ended_unreached(
    cli: CliRunner, home: Path
) -> None:
    from stemhub import lifecycle
    from stemhub.errors import ErrorCode, StemhubError
    from stemhub.models import JobStatus, Stage

    async def insert() -> None:
        store = await Store.open(Settings().resolved_database_url)
        try:
            for job_id, reached in (("a" * 32, True), ("b" * 32, False)):
                source = Source(kind=SourceKind.FILE, path=f"/music/{job_id}.wav")
                job = await store.insert_job(Job(id=job_id, request=JobRequest(source=source)))
                lifecycle.move(job, JobStatus.RUNNING, Stage.FETCH)
                lifecycle.move(job, JobStatus.RUNNING, Stage.SEPARATE)
                lifecycle.move(job, JobStatus.COMPLETED, Stage.DELIVER)
                if reached:
                    lifecycle.move(
                        job, JobStatus.COMPLETED, Stage.DONE, delivered_at=job.created_at
                    )
                else:
                    error = StemhubError(ErrorCode.DELIVERY_FAILED, "channel gone")
                    job.delivery["error"] = error.to_dict()
                    lifecycle.move(job, JobStatus.COMPLETED, Stage.DONE)
                await store.save_job(job)
        finally:
            await store.close()

    asyncio.run(insert())
    everything = cli.invoke(app, ["jobs", "list"])
    undelivered = cli.invoke(app, ["jobs", "list", "--undelivered"])
    assert everything.exit_code == 0 and undelivered.exit_code == 0, undelivered.output
    assert "aaaaaaaa" in everything.output and "bbbbbbbb" in everything.output
    assert "bbbbbbbb" in undelivered.output and "aaaaaaaa" not in undelivered.output
