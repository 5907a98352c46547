"""The StemSplit backend end to end against the local fake, over real HTTP on loopback.

The fake runs API time 20x faster (``time_factor=0.05``) and the backend shares its
clock, so a 2 s job takes 0.1 s here and every wait shrinks alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from starlette.applications import Starlette

from stemhub.backends.base import SeparationResult, SeparationTask
from stemhub.backends.stemsplit.backend import StemSplitBackend, StemSplitTuning
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import OutputFormat, StemSet
from stemhub.stemsplit_wire import RemoteStatus, sign_payload
from stemhub.testing import make_settings, write_test_tone
from tests.fakes.stemsplit import (
    FIXED_BPM,
    FIXED_KEY,
    FakeStemSplit,
    run_fake_stemsplit,
    serve_asgi,
)

FACTOR = 0.05
TUNING = StemSplitTuning(webhook_grace_s=4.0, backoff_base_s=0.2, poll_min_s=1.0, poll_max_s=4.0)


class Progress:
    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, percent: float, message: str | None = None) -> None:
        self.seen.append(percent)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    return write_test_tone(tmp_path / "song.wav", seconds=2.0)


def make_task(tmp_path: Path, audio: Path | None, **fields: Any) -> SeparationTask:
    values: dict[str, Any] = {
        "job_id": "hubjob1",
        "stem_set": StemSet.FOUR_STEMS,
        "stems": StemSet.FOUR_STEMS.stems,
        "output_format": OutputFormat.WAV,
        "input_path": audio,
        "filename": "song.wav",
        "out_dir": tmp_path / "out",
    }
    values.update(fields)
    return SeparationTask(**values)


Factory = Callable[..., AbstractAsyncContextManager[StemSplitBackend]]


@pytest.fixture
def backend_for(tmp_path: Path) -> Factory:
    """``async with backend_for(fake, **settings) as backend``: closed afterwards
    (``download_outputs`` is the backend's setting, the others the hub's)."""

    @asynccontextmanager
    async def make(
        fake: FakeStemSplit,
        tuning: StemSplitTuning = TUNING,
        *,
        download_outputs: bool | None = None,
        **overrides: Any,
    ) -> AsyncIterator[StemSplitBackend]:
        settings = make_settings(tmp_path / "data", **overrides)
        stemsplit = fake.settings(download_outputs=download_outputs)
        backend = StemSplitBackend(settings, stemsplit, tuning=tuning, clock=fake.clock)
        try:
            yield backend
        finally:
            await backend.close()

    return make


async def run(backend: StemSplitBackend, task: SeparationTask) -> tuple[str, SeparationResult]:
    remote_id = await backend.start(task)
    return remote_id, await backend.wait(task, remote_id, Progress())


async def test_upload_then_polling_to_completion_with_real_stems(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with (
        run_fake_stemsplit(time_factor=FACTOR, processing_s=8.0) as fake,
        backend_for(fake) as backend,
    ):
        task = make_task(tmp_path, audio)
        remote_id = await backend.start(task)
        progress = Progress()
        result = await backend.wait(task, remote_id, progress)

        assert set(result.stems) == {"vocals", "drums", "bass", "other"}
        assert (result.bpm, result.key) == (FIXED_BPM, FIXED_KEY)
        assert fake.counters["upload"] == 1
        assert fake.counters["storage_put"] == 1
        assert fake.counters["create_job"] == 1
        assert 1 <= fake.counters["get_job"] <= 6
        assert progress.seen and all(0 <= p < 100 for p in progress.seen)
        upload = next(iter(fake.state.uploads.values()))
        assert upload.content_length == audio.stat().st_size
        job = fake.state.jobs[remote_id]
        assert job.metadata == {"stemhubJobId": "hubjob1"}

        async with httpx.AsyncClient() as http:
            link = result.stems["vocals"].url
            assert link is not None
            response = await http.get(link)
        assert response.status_code == 200
        target = tmp_path / "vocals.wav"
        target.write_bytes(response.content)
        decoded, rate = soundfile.read(target)
        original, original_rate = soundfile.read(audio)
        assert rate == original_rate and decoded.shape == original.shape
        assert not np.allclose(decoded, original)


async def test_stems_are_downloaded_into_the_output_folder_when_the_operator_asks(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with (
        run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake,
        backend_for(fake, download_outputs=True) as backend,
    ):
        task = make_task(tmp_path, audio, stem_set=StemSet.BOTH, stems=("vocals", "instrumental"))
        _, result = await run(backend, task)
        assert fake.counters["storage_get"] == 2
    for stem in ("vocals", "instrumental"):
        stem_file = result.stems[stem]
        assert stem_file.path == tmp_path / "out" / f"{stem}.wav"
        assert stem_file.size_bytes == stem_file.path.stat().st_size
        info = soundfile.info(str(stem_file.path))
        assert info.samplerate == 44100 and info.frames == 88200
    assert not list((tmp_path / "out").glob("*.part"))


@pytest.mark.parametrize(
    ("overrides", "kept"),
    [
        ({"public_url": "https://hub.example.test"}, True),  # result pages: keep a copy
        ({"public_url": "https://hub.example.test", "download_outputs": False}, False),
        ({}, False),  # no result pages: the API's links are enough
    ],
)
async def test_a_hub_with_result_pages_keeps_the_hosted_stems_unless_told_not_to(
    tmp_path: Path, audio: Path, backend_for: Factory, overrides: dict[str, Any], kept: bool
) -> None:
    async with (
        run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake,
        backend_for(fake, **overrides) as backend,
    ):
        task = make_task(tmp_path, audio, stem_set=StemSet.BOTH, stems=("vocals", "instrumental"))
        _, result = await run(backend, task)
        assert fake.counters["storage_get"] == (2 if kept else 0)
    for stem_file in result.stems.values():
        assert (stem_file.path is not None and stem_file.path.is_file()) is kept


async def test_webhook_completion_needs_no_polling(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=4.0) as fake:
        app = Starlette()
        async with serve_asgi(app) as origin, backend_for(fake, public_url=origin) as backend:
            app.router.routes.append(backend.webhook_route())
            first = await run(backend, make_task(tmp_path, audio))
            second = await run(backend, make_task(tmp_path, audio, job_id="hubjob2"))

        assert fake.counters["create_webhook"] == 1, "registered once for both jobs"
        assert fake.counters["get_job"] == 0
        deliveries = await fake.state.wait_for_deliveries(2)
        assert [d.status for d in deliveries] == [200, 200]
        hook = next(iter(fake.state.webhooks.values()))
        assert hook.url == origin + "/hooks/stemsplit"
        for _, result in (first, second):
            assert result.bpm == FIXED_BPM and set(result.stems) == set(StemSet.FOUR_STEMS.stems)
        assert backend.inbox.stats.accepted == 2


async def test_a_webhook_without_analysis_is_confirmed_with_one_read(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(
        time_factor=FACTOR, processing_s=2.0, webhook_includes_analysis=False
    ) as fake:
        app = Starlette()
        async with serve_asgi(app) as origin, backend_for(fake, public_url=origin) as backend:
            app.router.routes.append(backend.webhook_route())
            _, result = await run(backend, make_task(tmp_path, audio))
        assert fake.counters["get_job"] == 1
        assert result.key == FIXED_KEY


async def test_a_webhook_that_never_comes_falls_back_to_polling(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0, drop_webhooks=True) as fake:
        app = Starlette()
        async with serve_asgi(app) as origin, backend_for(fake, public_url=origin) as backend:
            app.router.routes.append(backend.webhook_route())
            _, result = await run(backend, make_task(tmp_path, audio))
        assert fake.state.deliveries and fake.state.deliveries[0].error == "dropped"
        assert fake.counters["get_job"] >= 1
        assert set(result.stems) == set(StemSet.FOUR_STEMS.stems)


async def test_duplicate_forged_and_foreign_deliveries_are_handled(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(
        time_factor=FACTOR, processing_s=2.0, duplicate_webhooks=True
    ) as fake:
        app = Starlette()
        async with serve_asgi(app) as origin, backend_for(fake, public_url=origin) as backend:
            app.router.routes.append(backend.webhook_route())
            _, result = await run(backend, make_task(tmp_path, audio))
            assert result.bpm == FIXED_BPM
            deliveries = await fake.state.wait_for_deliveries(2)
            assert [d.status for d in deliveries] == [200, 200]
            assert backend.inbox.stats.duplicates == 1

            hook = next(iter(fake.state.webhooks.values()))
            event = {
                "event": "job.completed",
                "data": {"jobId": "someone-else", "status": "COMPLETED"},
            }
            body = json.dumps(event).encode()
            async with httpx.AsyncClient() as http:
                forged = await http.post(
                    origin + "/hooks/stemsplit",
                    content=body,
                    headers={"X-Webhook-Signature": sign_payload(body, "whsec_guess")},
                )
                unsigned = await http.post(origin + "/hooks/stemsplit", content=body)
                foreign = await http.post(
                    origin + "/hooks/stemsplit",
                    content=body,
                    headers={"X-Webhook-Signature": sign_payload(body, hook.secret)},
                )
        assert forged.status_code == 401 and unsigned.status_code == 401
        assert "whsec" not in forged.text
        assert foreign.status_code == 200 and foreign.json()["outcome"] == "unknown"
        assert backend.inbox.stats.rejected == 2


@pytest.mark.parametrize(
    ("outcome", "code"),
    [(RemoteStatus.FAILED, ErrorCode.BACKEND_ERROR), (RemoteStatus.EXPIRED, ErrorCode.JOB_EXPIRED)],
)
async def test_failed_and_expired_jobs_become_errors(
    tmp_path: Path, audio: Path, backend_for: Factory, outcome: RemoteStatus, code: ErrorCode
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake:
        fake.state.outcomes.append(outcome)
        async with backend_for(fake) as backend:
            with pytest.raises(StemhubError) as caught:
                await run(backend, make_task(tmp_path, audio))
    assert caught.value.code is code
    if outcome is RemoteStatus.FAILED:
        assert "could not be separated" in caught.value.message


async def test_a_429_storm_slows_the_hub_down_and_every_job_still_finishes(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=4.0) as fake:
        fake.state.rate_limit_storm(times=6, retry_after=3)
        async with backend_for(fake) as backend:
            tasks = [make_task(tmp_path, audio, job_id=f"storm{i}") for i in range(4)]
            results = await asyncio.gather(*(run(backend, t) for t in tasks))
            assert backend.pacer.stats.pauses >= 1
            assert backend.client.stats.rate_limited == 6
        assert len({remote_id for remote_id, _ in results}) == 4
        assert len(fake.state.jobs) == 4
        log = fake.state.api_requests()
        limited = [t for t, _, status in log if status == 429]
        assert len(limited) == 6
        # after any 429 the whole hub was quiet for Retry-After (3 s), not only that job;
        # requests already on the wire may still land within the first moment
        for t in limited:
            assert not [u for u, _, _ in log if t + 1.0 < u < t + 2.9]


async def test_a_burst_of_5xx_on_reads_and_a_lost_create_answer_cost_nothing_twice(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake:
        fake.state.fail("create_job", 500, after=True)
        fake.state.fail("get_job", 503, times=3)
        async with backend_for(fake) as backend:
            remote_id, result = await run(backend, make_task(tmp_path, audio))
        assert len(fake.state.jobs) == 1 and remote_id in fake.state.jobs
        assert fake.counters["create_job"] == 2
        assert fake.counters["idempotent_replay"] == 1
        assert fake.counters["get_job"] >= 4
        assert result.bpm == FIXED_BPM


async def test_many_concurrent_jobs_stay_under_the_rate_limit(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=0.01, processing_s=20.0, rate_limit=30) as fake:
        tuning = StemSplitTuning(rate_limit=30)
        async with backend_for(fake, tuning=tuning) as backend:
            tasks = [make_task(tmp_path, audio, job_id=f"many{i}") for i in range(20)]
            await asyncio.gather(*(run(backend, t) for t in tasks))
        statuses = [status for _, _, status in fake.state.request_log]
        assert 429 not in statuses
        assert fake.state.max_in_window() <= 30
        assert len(fake.state.jobs) == 20


async def test_youtube_jobs_resume_and_refresh_under_their_own_path(
    tmp_path: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake:
        task = make_task(
            tmp_path,
            None,
            youtube_url="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            stem_set=StemSet.BOTH,
            stems=("vocals", "instrumental"),
        )
        async with backend_for(fake) as backend:
            remote_id = await backend.start(task)
        assert remote_id.startswith("yt:")
        async with backend_for(fake) as resumed:
            result = await resumed.wait(task, remote_id, Progress())
            fresh = await resumed.refresh_outputs(remote_id)
        assert fake.counters["create_youtube_job"] == 1
        assert fake.counters["get_youtube_job"] >= 2
        assert fake.counters["get_job"] == 0
        assert set(result.stems) == {"vocals", "instrumental"}
        assert {"vocals", "instrumental", "full_audio"} <= set(fresh.stems)


async def test_refreshed_links_are_new_and_work(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0, stems_mode="copy") as fake:
        async with backend_for(fake) as backend:
            remote_id, result = await run(backend, make_task(tmp_path, audio))
            await fake.clock.sleep(2.0)
            fresh = await backend.refresh_outputs(remote_id)
        old, new = result.stems["bass"], fresh.stems["bass"]
        assert old.url != new.url
        assert old.expires_at is not None and new.expires_at is not None
        assert new.expires_at > old.expires_at
        async with httpx.AsyncClient() as http:
            assert new.url is not None
            response = await http.get(new.url)
        assert response.content == audio.read_bytes()


@pytest.mark.parametrize(
    ("seconds", "code"),
    [(0.1, ErrorCode.AUDIO_TOO_SHORT), (None, ErrorCode.UNSUPPORTED_FORMAT)],
)
async def test_the_services_refusals_reach_the_user_as_stemhub_codes(
    tmp_path: Path, backend_for: Factory, seconds: float | None, code: ErrorCode
) -> None:
    if seconds is None:
        source = tmp_path / "notes.wav"
        source.write_bytes(b"this is not audio at all" * 100)
    else:
        source = write_test_tone(tmp_path / "blip.wav", seconds=seconds)
    async with (
        run_fake_stemsplit(time_factor=FACTOR) as fake,
        backend_for(fake) as backend,
    ):
        with pytest.raises(StemhubError) as caught:
            await backend.start(make_task(tmp_path, source))
    assert caught.value.code is code


async def test_no_credit_and_a_revoked_key(
    tmp_path: Path, audio: Path, backend_for: Factory
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, balance_seconds=1) as fake:
        async with backend_for(fake) as backend:
            with pytest.raises(StemhubError) as caught:
                await backend.start(make_task(tmp_path, audio))
            assert caught.value.code is ErrorCode.INSUFFICIENT_CREDITS
            assert caught.value.details["required_seconds"] == 2
            fake.state.revoked_keys.add(fake.api_key)
            with pytest.raises(StemhubError) as revoked:
                await backend.describe()
        assert revoked.value.code is ErrorCode.BACKEND_AUTH


async def test_balance_and_job_listing(tmp_path: Path, audio: Path, backend_for: Factory) -> None:
    async with (
        run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0, stems_mode="copy") as fake,
        backend_for(fake) as backend,
    ):
        for i in range(3):
            await run(backend, make_task(tmp_path, audio, job_id=f"list{i}"))
        facts = await backend.describe()
        page = await backend.list_jobs(limit=2)
        done = RemoteStatus.COMPLETED
        every = [job async for job in backend.iter_jobs(status=done, page_size=2)]
    assert facts["balance_seconds"] == 36000 - 3 * 2
    assert facts["completion"] == "polling"
    assert len(page.jobs) == 2 and page.pagination.has_more
    assert len(every) == 3 and {j.status for j in every} == {RemoteStatus.COMPLETED}
