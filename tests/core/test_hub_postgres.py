"""A hub on real PostgreSQL, and two hubs sharing it: each job runs once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stemhub.config import QuotaSettings
from stemhub.models import JobRequest, JobStatus, Origin, Source, SourceKind
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, patience


async def test_two_hubs_on_one_postgres_share_jobs_and_quotas(
    postgres_url: str, tmp_path: Path, stemhub_audio_file: Path
) -> None:
    controls = FakeBackendControls(delay_s=0.2)
    quota = QuotaSettings(per_user="3/hour", per_guild=None, per_api_key=None)

    def settings(name: str):  # type: ignore[no-untyped-def]
        return make_settings(
            tmp_path / name,
            database_url=postgres_url,
            default_backend="fake",
            quota=quota,
            output_dir=tmp_path / "shared-outputs",
        )

    first = open_test_hub(settings("a"), controls, recovery_interval_s=0.2)
    second = open_test_hub(settings("b"), controls, recovery_interval_s=0.2)
    async with first, second:
        assert first.store.dialect == "postgresql"
        source = Source(kind=SourceKind.FILE, path=str(stemhub_audio_file))
        jobs = []
        for hub in (first, second, first):
            request = JobRequest(source=source, origin=Origin(platform="cli", user_id="carol"))
            jobs.append(await hub.submit(request))
        rejected = None
        try:
            await second.submit(
                JobRequest(source=source, origin=Origin(platform="cli", user_id="carol"))
            )
        except Exception as exc:
            rejected = exc
        assert rejected is not None and "3 splits" in str(rejected)
        done = await asyncio.gather(*(first.wait_for(j.id, timeout=patience(20)) for j in jobs))
        assert all(job.status is JobStatus.COMPLETED for job in done)
        await asyncio.sleep(0.5)  # give both recovery loops a chance to double-run a job
    assert len(controls.started) == 3
    assert len(controls.completed) == 3
