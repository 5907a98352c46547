"""StemSplit through the whole hub: submit, webhook or polling, restart mid-job.

The hub talks to the local fake StemSplit over loopback. A small plugin replaces the
builtin ``stemsplit`` registration to give the backend the fake's settings and fast
clock (the way code that builds the backend itself supplies ``StemSplitSettings``); the
routes come from the builtin module's own hook implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stemhub import hookimpl
from stemhub.backends import stemsplit as stemsplit_module
from stemhub.backends.stemsplit.backend import StemSplitBackend, StemSplitTuning
from stemhub.config import Settings
from stemhub.http import HubServer, build_app
from stemhub.hub import Hub
from stemhub.models import JobRequest, JobStatus, Source, SourceKind, StemSet
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import free_port, make_settings, patience, write_test_tone
from tests.fakes.stemsplit import FIXED_BPM, FakeStemSplit, run_fake_stemsplit

FACTOR = 0.05
TUNING = StemSplitTuning(webhook_grace_s=10.0, poll_min_s=1.0, poll_max_s=4.0)


class FastStemSplit:
    """Registers the StemSplit backend on the fake's settings and clock (and its webhook
    route)."""

    def __init__(self, fake: FakeStemSplit) -> None:
        self.fake = fake

    @hookimpl
    def stemhub_register_backends(self, register: Callable[..., None]) -> None:
        def factory(hub: Hub) -> StemSplitBackend:
            return StemSplitBackend(
                hub.settings,
                self.fake.settings(),
                store=hub.store,
                sealer=hub.sealer,
                tuning=TUNING,
                clock=self.fake.clock,
            )

        register("stemsplit", factory)

    @hookimpl
    def stemhub_register_routes(self, register: Callable[..., None], hub: Hub) -> None:
        stemsplit_module.stemhub_register_routes(register, hub)


def hub_for(fake: FakeStemSplit, settings: Settings) -> Hub:
    pm = get_plugin_manager(
        only=(), block="stemsplit", extra=[("fast-stemsplit", FastStemSplit(fake))]
    )
    return Hub(settings, pm=pm, lease_s=5.0, recovery_interval_s=0.5)


def request_for(audio: Path) -> JobRequest:
    return JobRequest(
        source=Source(kind=SourceKind.FILE, path=str(audio)),
        stems=StemSet.FOUR_STEMS,
        backend="stemsplit",
    )


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    return write_test_tone(tmp_path / "mix.wav", seconds=1.5)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path / "hubdata", **overrides)


async def test_a_job_submitted_to_the_hub_finishes_on_stemsplit_by_polling(
    tmp_path: Path, audio: Path
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=3.0) as fake:  # noqa: SIM117
        async with hub_for(fake, settings_for(tmp_path)) as hub:
            job = await hub.submit(request_for(audio))
            done = await hub.wait_for(job.id, timeout=patience(30))
    assert done.status is JobStatus.COMPLETED, done.error_message
    assert set(done.outputs) == {"vocals", "drums", "bass", "other"}
    assert all(o.url and o.url.startswith("http://127.0.0.1") for o in done.outputs.values())
    assert done.audio is not None and done.audio.bpm == FIXED_BPM
    assert done.remote_id in fake.state.jobs
    assert fake.counters["create_job"] == 1 and fake.counters["get_job"] >= 1


async def test_webhook_completion_through_the_hubs_http_app_with_the_secret_sealed(
    tmp_path: Path, audio: Path
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=3.0) as fake:
        port = free_port()
        settings = settings_for(tmp_path, public_url=f"http://127.0.0.1:{port}")
        async with hub_for(fake, settings) as hub, HubServer(hub, port=port).running():
            job = await hub.submit(request_for(audio))
            done = await hub.wait_for(job.id, timeout=patience(30))
            kept = await hub.store.kv_items("stemsplit")
        assert done.status is JobStatus.COMPLETED, done.error_message
        assert fake.counters["get_job"] == 0, "the webhook finished the job, no polling"
        hook = next(iter(fake.state.webhooks.values()))
        assert hook.url == f"http://127.0.0.1:{port}/hooks/stemsplit"
        deliveries = await fake.state.wait_for_deliveries(1)
        assert [d.status for d in deliveries] == [200]
        assert len(kept) == 1
        stored = kept[0][1]
        assert stored["sealed_secret"].startswith("sealed:v1:")
        assert hook.secret not in str(stored)
        database = settings.data_dir / "stemhub.db"
        for path in database.parent.glob("stemhub.db*"):
            assert hook.secret.encode() not in path.read_bytes()

        # a restarted hub on the same store and URL reuses the subscription and its secret
        async with hub_for(fake, settings) as hub, HubServer(hub, port=port).running():
            job = await hub.submit(request_for(audio))
            done = await hub.wait_for(job.id, timeout=patience(30))
        assert done.status is JobStatus.COMPLETED
        assert fake.counters["create_webhook"] == 1
        assert fake.counters["get_job"] == 0


async def test_a_restarted_hub_resumes_the_remote_job_by_id_without_resubmitting(
    tmp_path: Path, audio: Path
) -> None:
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=20.0) as fake:
        settings = settings_for(tmp_path)
        async with hub_for(fake, settings) as first:
            job = await first.submit(request_for(audio))
            async for seen in first.watch(job.id, poll_s=0.05):
                if seen.remote_id is not None:
                    break
            remote_id = seen.remote_id
        stored = await _stored(settings, job.id)
        assert stored.remote_id == remote_id and not stored.finished

        async with hub_for(fake, settings) as second:
            done = await second.wait_for(job.id, timeout=patience(30))
    assert done.status is JobStatus.COMPLETED, done.error_message
    assert done.remote_id == remote_id
    assert fake.counters["create_job"] == 1
    assert fake.counters["upload"] == 1 and fake.counters["storage_put"] == 1
    assert len(fake.state.jobs) == 1


async def _stored(settings: Settings, job_id: str) -> Any:
    from stemhub._store import Store

    store = await Store.open(settings.resolved_database_url, migrate=False)
    try:
        return await store.get_job(job_id)
    finally:
        await store.close()


async def test_the_builtin_plugin_registers_the_backend_and_the_receiver_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMSPLIT_API_KEY", "sk_test")
    with_url = make_settings(tmp_path / "a", public_url="https://hub.example.test")
    async with Hub(with_url, pm=get_plugin_manager(only=())) as hub:
        backend = hub.backend("stemsplit")
        assert isinstance(backend, StemSplitBackend)
        assert (
            backend.capabilities.resumable and StemSet.SIX_STEMS in backend.capabilities.stem_sets
        )
        paths = [getattr(route, "path", "") for route in build_app(hub).routes]
        assert "/hooks/stemsplit" in paths
    without_url = make_settings(tmp_path / "b")
    async with Hub(without_url, pm=get_plugin_manager(only=())) as hub:
        paths = [getattr(route, "path", "") for route in build_app(hub).routes]
        assert "/hooks/stemsplit" not in paths
