"""Fixtures: a fake Discord on loopback, and a hub running the real Discord plugin against it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio
import stemhub_discord.plugin
from stemhub_discord import DiscordFrontend

from stemhub import Job, hookimpl
from stemhub.hub import Hub
from stemhub.testing import (
    FakeBackendControls,
    make_settings,
    open_test_hub,
    patience,
    write_test_tone,
)
from tests.fakes.discord import FakeDiscord, SimClock, running_fake_discord

PUBLIC_URL = "https://stems.example.test"


@dataclass
class Bot:
    """A hub with the Discord frontend logged in to the fake Discord."""

    hub: Hub
    frontend: DiscordFrontend
    fake: FakeDiscord
    controls: FakeBackendControls

    def dispatch(self, payload: dict[str, Any]) -> None:
        """Hand an INTERACTION_CREATE payload to discord.py, as the gateway does."""
        self.fake.receive(payload)
        self.frontend.client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]

    def gateway(self, event: str, data: dict[str, Any]) -> None:
        """Hand another gateway DISPATCH (GUILD_CREATE, GUILD_DELETE...) to discord.py."""
        self.frontend.client._connection.parsers[event](data)

    async def job_for(self, payload: dict[str, Any], *, within_s: float = 5.0) -> Job:
        key = f"discord:{payload['id']}"
        async with asyncio.timeout(patience(within_s)):
            while True:
                job = await self.hub.store.get_job_by_idempotency_key(key)
                if job is not None:
                    return job
                await asyncio.sleep(0.01)

    async def run(self, payload: dict[str, Any], *, within_s: float = 10.0) -> Job:
        """Dispatch a command and wait until its job was delivered."""
        self.dispatch(payload)
        job = await self.job_for(payload)
        return await self.hub.wait_for(job.id, timeout=patience(within_s))

    async def until(self, predicate: Callable[[], object], *, within_s: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (the simulator's state is read, never slept on)."""
        async with asyncio.timeout(patience(within_s)):
            while not predicate():  # noqa: ASYNC110 - polls the simulator's state
                await asyncio.sleep(0.01)

    def edits(self, token: str) -> list[dict[str, Any]]:
        """Bodies of the accepted edits of an interaction's response."""
        return [c.json for c in self.fake.find("PATCH", f"/{token}/messages/@original")]

    async def settle(self, *, calls: int, within_s: float = 5.0) -> None:
        """Wait until the fake Discord has seen at least ``calls`` requests."""
        async with asyncio.timeout(patience(within_s)):
            while len(self.fake.calls) < calls:  # noqa: ASYNC110 - polls the fake's call log
                await asyncio.sleep(0.01)


class LateSeparation:
    """Moves the clock (simulator and bot alike) forward when a job's stems are ready.

    A job that waited in a long queue: its interaction token (15 minutes) is dead by
    the time the result is delivered.
    """

    def __init__(self, clock: SimClock, seconds: float = 16 * 60) -> None:
        self.clock = clock
        self.seconds = seconds

    @hookimpl
    def stemhub_job_completed(self, hub: Any, job: Job) -> None:
        self.clock.advance(self.seconds)


@pytest.fixture
def song(tmp_path: Path) -> Path:
    return write_test_tone(tmp_path / "song.wav", seconds=1.0)


@pytest_asyncio.fixture
async def fake_discord(song: Path) -> AsyncIterator[FakeDiscord]:
    async with running_fake_discord({"song.wav": song}) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _route_base() -> Any:
    """discord.py keeps its API base in a class attribute; put it back after each test."""
    original = discord.http.Route.BASE
    yield
    discord.http.Route.BASE = original


BotFactory = Callable[..., contextlib.AbstractAsyncContextManager[Bot]]


@pytest.fixture
def make_bot(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    monkeypatch: pytest.MonkeyPatch,
) -> BotFactory:
    """Open a hub with the Discord plugin; ``env`` sets STEMHUB_DISCORD_* options."""

    @contextlib.asynccontextmanager
    async def factory(
        *,
        env: dict[str, str] | None = None,
        controls: FakeBackendControls | None = None,
        data_dir: Path | None = None,
        extra_plugins: tuple[tuple[str, object], ...] = (),
        result_page: bool = False,
        **settings: Any,
    ) -> AsyncIterator[Bot]:
        monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
        monkeypatch.setenv("STEMHUB_DISCORD_TOKEN", "fake-bot-token")
        monkeypatch.setenv("STEMHUB_DISCORD_API_BASE_URL", fake_discord.api)
        monkeypatch.setenv("STEMHUB_DISCORD_PROGRESS_EDIT_INTERVAL_S", "0.3")
        for key, value in (env or {}).items():
            monkeypatch.setenv(f"STEMHUB_DISCORD_{key.upper()}", value)
        values: dict[str, Any] = {
            "default_backend": "fake",
            "allow_private_networks": True,
            "public_url": PUBLIC_URL,
        }
        values.update(settings)
        hub_settings = make_settings(data_dir or tmp_path / "data", **values)
        backend = controls or FakeBackendControls()
        # the result page's waveforms are opt-in here: most tests count the files they see
        block = () if result_page else ("web",)
        hub = open_test_hub(hub_settings, backend, frontends=["discord"], block=block)
        hub.pm.register(stemhub_discord.plugin, name="discord")
        for name, plugin in extra_plugins:
            hub.pm.register(plugin, name=name)
        await hub.open()
        frontend = hub.frontends["discord"]
        assert isinstance(frontend, DiscordFrontend)
        try:
            frontend.clock = fake_discord.clock.now
            await frontend.login()
            yield Bot(hub, frontend, fake_discord, backend)
        finally:
            await hub.close()

    return factory


@pytest_asyncio.fixture
async def bot(make_bot: BotFactory) -> AsyncIterator[Bot]:
    async with make_bot() as running:
        yield running
