"""The bot's shards in two hub processes on one database, against the strict simulator.

Process A runs shard 0 of 2 and process B shard 1 (``STEMHUB_DISCORD_SHARD_IDS`` and
``STEMHUB_DISCORD_SHARD_COUNT``), each a real OS process (tests/discord/_shard_hub_main.py)
on one fresh PostgreSQL database and one data folder (the shared volume of a deployment
without object storage). The simulator runs here and sends each interaction only to the
session of its guild's shard, as Discord does. What each process did is read from its
stdout (a JSON line per job it created or delivered); what people saw, from the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stemhub._store import Store
from stemhub.models import Job, JobStatus, Stage
from stemhub.testing import patience, write_test_tone
from tests.discord import _payloads as p
from tests.fakes.discord import BOT_TOKEN, FakeDiscord, SimMessage, running_fake_discord

# hub processes start in seconds on an idle machine, in a minute on a busy one
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
# (guild_id >> 22) % 2: these guilds are on shard 0 and on shard 1 of 2
GUILD_ON_0 = 1000 << 22
GUILD_ON_1 = 1001 << 22
RESULT_MARKS = ("Stems of ", "Your stems of ")
T = TypeVar("T")


@dataclass
class HubProcess:
    """One hub process and the job events it printed."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    events: list[dict[str, str]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def keys(self, event: str) -> list[str]:
        """Idempotency keys (``discord:<interaction id>``) of the jobs it ``event``-ed."""
        return [e["key"] for e in self.events if e["event"] == event]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Shards:
    """Starts hub processes for shards of the bot, all on one database and data folder."""

    fake: FakeDiscord
    tmp: Path
    database_url: str
    started: list[HubProcess] = field(default_factory=list)

    async def start(
        self, name: str, shard_id: int, *, separation_s: float, **env: str
    ) -> HubProcess:
        values = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "STEMHUB_CONFIG": str(self.tmp / "absent.toml"),
            "STEMHUB_DATA_DIR": str(self.tmp / "shared-data"),
            "STEMHUB_DATABASE_URL": self.database_url,
            "STEMHUB_SIGNING_KEY": "stemhub-test-signing-key",
            "STEMHUB_DEFAULT_BACKEND": "fake",
            "STEMHUB_ALLOW_PRIVATE_NETWORKS": "true",
            "STEMHUB_PUBLIC_URL": "https://stems.example.test",
            "STEMHUB_PROGRESS_INTERVAL_S": "0",
            "STEMHUB_DISCORD_TOKEN": BOT_TOKEN,
            "STEMHUB_DISCORD_API_BASE_URL": self.fake.api,
            "STEMHUB_DISCORD_SHARD_IDS": f"[{shard_id}]",
            "STEMHUB_DISCORD_SHARD_COUNT": "2",
            "STEMHUB_DISCORD_PROGRESS_EDIT_INTERVAL_S": "0.2",
            "TEST_DISCORD_GATEWAY_URL": self.fake.gateway_url,
            "TEST_SEPARATION_S": str(separation_s),
            **env,
        }
        log = self.tmp / f"{name}-{len(self.started)}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.discord._shard_hub_main",
                cwd=self.tmp,
                env=values,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        hub = HubProcess(name, process, log)
        hub.reader = asyncio.create_task(self._read(hub))
        self.started.append(hub)
        await self.until(
            lambda: any(s.shard == (shard_id, 2) for s in self.fake.gateways),
            f"{name} connects shard {shard_id}",
            hub,
        )
        return hub

    @staticmethod
    async def _read(hub: HubProcess) -> None:
        assert hub.process.stdout is not None
        async for line in hub.process.stdout:
            with contextlib.suppress(ValueError):
                hub.events.append(json.loads(line))

    async def until(self, check: Callable[[], object], what: str, *hubs: HubProcess) -> None:
        """Wait on a condition; on a hang, fail with the processes' logs."""

        async def poll() -> bool:
            return bool(check())

        await self.until_async(poll, what, *hubs)

    async def until_async(
        self, check: Callable[[], Awaitable[T | None]], what: str, *hubs: HubProcess
    ) -> T:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience(60)):
                while True:
                    value = await check()
                    if value:
                        return value
                    for hub in hubs:
                        if hub.process.returncode is not None:
                            pytest.fail(
                                f"{hub.name} exited while waiting for: {what}\n{hub.tail()}"
                            )
                    await asyncio.sleep(0.05)
        logs = "\n".join(f"--- {hub.name}\n{hub.tail()}" for hub in hubs or self.started)
        pytest.fail(f"never happened: {what}\n{logs}")

    async def stop_all(self) -> None:
        for hub in self.started:
            if hub.process.returncode is None:
                hub.process.send_signal(signal.SIGTERM)
        for hub in self.started:
            try:
                async with asyncio.timeout(patience(20)):
                    await hub.process.wait()
            except TimeoutError:
                hub.process.kill()
                await hub.process.wait()
            if hub.reader is not None:
                await hub.reader


@pytest.fixture
def song(tmp_path: Path) -> Path:
    return write_test_tone(tmp_path / "song.wav", seconds=1.0)


@contextlib.asynccontextmanager
async def bot_on_two_processes(
    tmp_path: Path, song: Path, postgres_url: str
) -> AsyncIterator[tuple[Shards, Store]]:
    """The simulator and the database; the hub processes are the test's to start."""
    store = await Store.open(postgres_url)  # migrated here, before any hub starts
    try:
        async with running_fake_discord({"song.wav": song}) as fake:
            shards = Shards(fake, tmp_path, postgres_url)
            try:
                yield shards, store
            finally:
                await shards.stop_all()
    finally:
        await store.close()


def command(fake: FakeDiscord, guild_id: int, user_id: int) -> dict[str, Any]:
    url = fake.cdn_url("song.wav")
    attachment = p.attachment("song.wav", len(fake.cdn_files["song.wav"]), url)
    return p.split_command(file=attachment, guild_id=guild_id, user_id=user_id)


def results_for(fake: FakeDiscord, payload: dict[str, Any]) -> list[SimMessage]:
    """The result messages its person sees: on the interaction, in the channel or by DM."""
    user = int(payload["member"]["user"]["id"])
    dm = fake._dm_channels.get(user)
    return [
        m
        for m in fake.seen_by(user)
        if (m.token == payload["token"] or m.channel_id == dm)
        and any(mark in m.text for mark in RESULT_MARKS)
    ]


async def delivered(
    shards: Shards, store: Store, payload: dict[str, Any], *hubs: HubProcess
) -> Job:
    """Until the command's job is delivered (recorded DONE) and its result is visible."""
    key = f"discord:{payload['id']}"

    async def done() -> Job | None:
        job = await store.get_job_by_idempotency_key(key)
        finished = job is not None and job.stage is Stage.DONE and job.delivered_at is not None
        return job if finished and results_for(shards.fake, payload) else None

    return await shards.until_async(done, f"the result of {key}", *hubs)


async def test_each_process_answers_the_guilds_of_its_own_shard(
    tmp_path: Path, song: Path, postgres_url: str
) -> None:
    async with bot_on_two_processes(tmp_path, song, postgres_url) as (shards, store):
        a = await shards.start("A", 0, separation_s=0.2)
        b = await shards.start("B", 1, separation_s=0.2)
        on_0 = command(shards.fake, GUILD_ON_0, user_id=1_400_000_000_000_000_100)
        on_1 = command(shards.fake, GUILD_ON_1, user_id=1_400_000_000_000_000_101)

        assert await shards.fake.push("INTERACTION_CREATE", on_0) == [(0, 2)]
        assert await shards.fake.push("INTERACTION_CREATE", on_1) == [(1, 2)]
        job_0 = await delivered(shards, store, on_0, a, b)
        job_1 = await delivered(shards, store, on_1, a, b)
        await shards.until(lambda: len(a.keys("delivered") + b.keys("delivered")) == 2, "both")

    key_0, key_1 = f"discord:{on_0['id']}", f"discord:{on_1['id']}"
    assert a.keys("created") == [key_0] and a.keys("delivered") == [key_0]
    assert b.keys("created") == [key_1] and b.keys("delivered") == [key_1]
    for job, payload in ((job_0, on_0), (job_1, on_1)):
        assert job.status is JobStatus.COMPLETED
        assert job.delivery["sent"]["result"]["via"] == "interaction"
        assert shards.fake.interactions[payload["token"]].acked
        (result,) = results_for(shards.fake, payload)
        assert result.token == payload["token"] and result.files


async def test_a_job_of_a_killed_process_is_delivered_by_the_other_through_its_token(
    tmp_path: Path, song: Path, postgres_url: str
) -> None:
    """SIGKILL A mid-separation: B takes the job over after A's lease and delivers it
    through the interaction A answered, once; A, started again, takes shard 0 back."""
    fast_recovery = {"STEMHUB_LEASE_S": "2", "STEMHUB_RECOVERY_INTERVAL_S": "0.2"}
    async with bot_on_two_processes(tmp_path, song, postgres_url) as (shards, store):
        a = await shards.start("A", 0, separation_s=3600, **fast_recovery)
        b = await shards.start("B", 1, separation_s=0.2, **fast_recovery)
        payload = command(shards.fake, GUILD_ON_0, user_id=1_400_000_000_000_000_200)
        key = f"discord:{payload['id']}"

        assert await shards.fake.push("INTERACTION_CREATE", payload) == [(0, 2)]

        async def separating() -> Job | None:
            job = await store.get_job_by_idempotency_key(key)
            return job if job and job.stage is Stage.SEPARATE and job.remote_id else None

        await shards.until_async(separating, "A separates the job", a)
        a.process.kill()
        await a.process.wait()
        if a.reader is not None:
            await a.reader  # every line A printed before it died, read
        assert a.keys("created") == [key]

        job = await delivered(shards, store, payload, b)
        await shards.until(lambda: b.keys("delivered") == [key], "B's delivered event", b)

        assert job.status is JobStatus.COMPLETED
        assert job.delivery["sent"]["result"]["via"] == "interaction"
        assert a.keys("delivered") == [] and b.keys("created") == []
        (result,) = results_for(shards.fake, payload)
        assert result.token == payload["token"] and result.files
        assert not any("could not send you" in m.text for m in shards.fake.messages)

        again = await shards.start("A-again", 0, separation_s=0.2)
        later = command(shards.fake, GUILD_ON_0, user_id=1_400_000_000_000_000_201)
        assert await shards.fake.push("INTERACTION_CREATE", later) == [(0, 2)]
        await delivered(shards, store, later, again, b)
        await shards.until(lambda: again.keys("delivered") == [f"discord:{later['id']}"], "A")

    assert b.keys("delivered") == [key]
    assert len(results_for(shards.fake, payload)) == 1
