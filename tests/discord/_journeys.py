"""Seeded journeys of Discord users against the simulator in chaos mode, and their verdicts.

Shared by ``tests/discord/test_chaos.py`` (a small count) and ``bench/discord_chaos.py``
(1,000). Each journey is one person (their own user and channel ids, so a refusal that
sticks to them touches no one else) doing one of: ``/split`` with an attachment, with a
link, "Split stems" on a message, a split then "Get fresh links", a split sent by DM, a
split whose interaction token dies while the job runs, and a split during which the hub
restarts in the middle of delivering. Discord (the simulator) refuses calls at random.

The verdict reads what the person can see in the simulator, never the bot's own records:

- ``silent``: nothing final reached them (only "thinking...", progress, or nothing) although
  the bot got the command (an initial response refused by Discord is counted apart as
  ``discord_failed``: Discord itself then shows "The application did not respond");
- ``double``: the result (or the result and the undelivered notice) reached them twice;
- ``leaked``: anything of a ``dm:true`` request posted where others can see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import stemhub_discord.plugin
from stemhub_discord import DiscordFrontend

from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, patience
from tests.discord import _payloads as p
from tests.fakes.discord import BOT_TOKEN, FakeDiscord, SimMessage

KINDS = ("attachment", "link", "menu", "buttons", "dm", "expired", "restart")
PROGRESS = ("\N{HOURGLASS WITH FLOWING SAND}", "\N{INBOX TRAY}", "\N{CONTROL KNOBS}")
PROGRESS += ("\N{OUTBOX TRAY}",)
RESULT_MARKS = ("Stems of ", "Your stems of ")


@dataclass
class Figures:
    journeys: int = 0
    silent: int = 0
    double: int = 0
    leaked: int = 0
    discord_failed: int = 0
    stale: int = 0
    """Final word elsewhere, but the deferred response was left on a progress line."""
    undelivered: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.journeys} journeys: {self.silent} silent, {self.double} double posts,"
            f" {self.leaked} private made public; {self.discord_failed} initial responses"
            f" refused by Discord, {self.stale} progress lines left (token killed),"
            f" {self.undelivered} told plainly that delivery failed; {self.seconds:.1f} s"
        )


@dataclass
class Bot:
    hub: Any
    frontend: DiscordFrontend
    fake: FakeDiscord

    def dispatch(self, payload: dict[str, Any]) -> None:
        self.fake.receive(payload)
        self.frontend.client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def open_bot(
    fake: FakeDiscord, data_dir: Path, *, env: dict[str, str] | None = None, **settings: Any
) -> AsyncIterator[Bot]:
    """A hub running the real Discord plugin against the simulator."""
    values = {
        "STEMHUB_CONFIG": str(data_dir / "absent.toml"),
        "STEMHUB_DISCORD_TOKEN": BOT_TOKEN,
        "STEMHUB_DISCORD_API_BASE_URL": fake.api,
        "STEMHUB_DISCORD_PROGRESS_EDIT_INTERVAL_S": "0.2",
        **{f"STEMHUB_DISCORD_{k.upper()}": v for k, v in (env or {}).items()},
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    base = discord.http.Route.BASE
    options: dict[str, Any] = {
        "default_backend": "fake",
        "allow_private_networks": True,
        "public_url": "https://stems.example.test",
        "delivery_attempts": 3,
        **settings,
    }
    hub = open_test_hub(
        make_settings(data_dir, **options),
        FakeBackendControls(delay_s=0.05, progress_steps=2),
        frontends=["discord"],
    )
    hub.pm.register(stemhub_discord.plugin, name="discord")
    try:
        await hub.open()
        frontend = hub.frontends["discord"]
        assert isinstance(frontend, DiscordFrontend)
        frontend.clock = fake.clock.now
        await frontend.login()
        yield Bot(hub, frontend, fake)
    finally:
        await hub.close()
        discord.http.Route.BASE = base
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _is_final(message: SimMessage) -> bool:
    if message.loading or message.deleted:
        return False
    if message.body.get("embeds") or message.files:
        return True
    content = str(message.body.get("content") or "")
    return bool(content) and not content.startswith(PROGRESS) and "Still working" not in content


def _is_result(message: SimMessage) -> bool:
    return (
        any(mark in message.text for mark in RESULT_MARKS) or "could not send you" in message.text
    )


@dataclass
class Journey:
    index: int
    kind: str
    user_id: int
    channel_id: int
    tokens: list[str] = field(default_factory=list)
    result_tokens: list[str] = field(default_factory=list)
    """Interactions whose answers are about the split (not button answers)."""
    private: bool = False
    click: str | None = None
    dms_before_click: int = 0
    messages_before_click: int | None = None


def _mine(fake: FakeDiscord, journey: Journey) -> list[SimMessage]:
    dm_channel = fake._dm_channels.get(journey.user_id)
    mine = []
    for message in fake.messages:
        in_dm = dm_channel is not None and message.channel_id == dm_channel
        in_channel = message.channel_id == journey.channel_id and message.token is None
        if message.token in journey.tokens or in_dm or in_channel:
            mine.append(message)
    return mine


def judge(fake: FakeDiscord, journey: Journey, figures: Figures) -> None:
    mine = _mine(fake, journey)
    for token in journey.tokens:
        interaction = fake.interactions.get(token)
        if interaction is not None and not interaction.acked:
            figures.discord_failed += 1
            if token == journey.tokens[0]:
                return
    visible = [m for m in mine if not m.deleted]
    if not any(_is_final(m) for m in visible):
        figures.silent += 1
        figures.problems.append(f"silent: {journey}")
    cut = journey.messages_before_click
    before = fake.messages[:cut] if cut is not None else fake.messages
    results = [
        m
        for m in visible
        if _is_result(m)
        and m.token in (None, *journey.result_tokens)
        and any(m is earlier for earlier in before)
    ]
    if len(results) > 1:
        figures.double += 1
        figures.problems.append(f"double: {journey} {[m.text[:60] for m in results]}")
    if journey.private and any(m.private_to is None for m in mine):
        figures.leaked += 1
        figures.problems.append(f"leaked: {journey}")
    if journey.click is not None:
        click = fake.interactions[journey.click]
        if click.acked and not _click_answered(fake, journey):
            figures.silent += 1
            figures.problems.append(f"silent click: {journey}")
    originals = [m for m in mine if m.kind == "interaction" and m.token == journey.tokens[0]]
    if originals and not _is_final(originals[0]) and not originals[0].deleted:
        figures.stale += 1
    if any("could not send you" in m.text or "did not finish" in m.text for m in visible):
        figures.undelivered += 1


async def _wait_done(bot: Bot, payload: dict[str, Any], *, within_s: float = 60.0) -> None:
    """Until the job of this command is delivered, or it is clear there is no job."""
    key = f"discord:{payload['id']}"
    async with asyncio.timeout(within_s):
        while True:
            job = await bot.hub.job_by_idempotency_key(key)
            if job is not None:
                await bot.hub.wait_for(job.id, timeout=within_s)
                return
            interaction = bot.fake.interactions[payload["token"]]
            if not interaction.acked and (interaction.dead or _late(bot, payload)):
                return  # Discord refused the initial response
            original = interaction.original
            answered = interaction.acked and (original is None or not original.loading)
            if answered or interaction.dead:
                await asyncio.sleep(0.2)
                if await bot.hub.job_by_idempotency_key(key) is None:
                    return  # refused before a job existed
            await asyncio.sleep(0.02)


def _command(fake: FakeDiscord, journey: Journey, rng: random.Random) -> dict[str, Any]:
    url = fake.cdn_url("song.wav")
    who = {"user_id": journey.user_id, "channel_id": journey.channel_id}
    attachment = p.attachment("song.wav", len(fake.cdn_files["song.wav"]), url)
    if journey.kind == "link":
        return p.split_command(url=url, **who)
    if journey.kind == "menu":
        return p.split_stems_menu(p.channel_message(attachments=[attachment]), **who)
    stems = rng.choice(["BOTH", "FOUR_STEMS", "VOCALS"])
    return p.split_command(file=attachment, stems=stems, dm=journey.kind == "dm", **who)


async def _buttons(bot: Bot, journey: Journey) -> None:
    results = [m for m in bot.fake.of_interaction(journey.tokens[0]) if m.body.get("components")]
    if not results:
        return
    message = bot.fake._message_json(results[-1])
    links = next(
        (
            c["custom_id"]
            for row in message["components"]
            for c in row["components"]
            if str(c.get("custom_id", "")).startswith("stemhub:links:")
        ),
        None,
    )
    if links is None:
        return
    click = p.component_click(message, links, user_id=journey.user_id)
    journey.tokens.append(click["token"])
    journey.click = click["token"]
    journey.dms_before_click = len(_dms(bot.fake, journey))
    journey.messages_before_click = len(bot.fake.messages)
    bot.dispatch(click)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(patience(10)):
            while True:
                interaction = bot.fake.interactions[click["token"]]
                if _click_answered(bot.fake, journey):
                    return
                if interaction.acked is False and _late(bot, click):
                    return
                await asyncio.sleep(0.02)


def _click_answered(fake: FakeDiscord, journey: Journey) -> bool:
    """The click's own answer, or one sent after it by DM or in the channel."""
    assert journey.click is not None and journey.messages_before_click is not None
    if any(_is_final(m) for m in fake.of_interaction(journey.click)):
        return True
    later = fake.messages[journey.messages_before_click :]
    dm_channel = fake._dm_channels.get(journey.user_id)
    return any(
        _is_final(m) and m.token is None and m.channel_id in (dm_channel, journey.channel_id)
        for m in later
    )


def _dms(fake: FakeDiscord, journey: Journey) -> list[SimMessage]:
    channel = fake._dm_channels.get(journey.user_id)
    return [m for m in fake.messages if channel is not None and m.channel_id == channel]


def _late(bot: Bot, payload: dict[str, Any]) -> bool:
    interaction = bot.fake.interactions[payload["token"]]
    return bot.fake.clock.now() - interaction.created_at > 3.5


async def run_journey(bot: Bot, journey: Journey, rng: random.Random) -> None:
    payload = _command(bot.fake, journey, rng)
    journey.tokens.append(payload["token"])
    journey.result_tokens.append(payload["token"])
    journey.private = journey.kind == "dm"
    bot.dispatch(payload)
    if journey.kind == "expired":
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience(10)):
                key = f"discord:{payload['id']}"
                while await bot.hub.job_by_idempotency_key(key) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        bot.fake.expire(payload["token"])
    await _wait_done(bot, payload)
    if journey.kind == "buttons":
        await _buttons(bot, journey)


async def run_restart_journey(
    fake: FakeDiscord, data_dir: Path, journey: Journey, rng: random.Random, env: dict[str, str]
) -> None:
    """The hub stops while it delivers (after its first message); another one finishes."""
    journey.private = False
    async with open_bot(fake, data_dir, env=env) as first:
        payload = _command(fake, journey, rng)
        journey.tokens.append(payload["token"])
        journey.result_tokens.append(payload["token"])
        first.dispatch(payload)
        key = f"discord:{payload['id']}"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience(20)):
                while True:
                    job = await first.hub.job_by_idempotency_key(key)
                    if job is not None and (job.delivery.get("sent") or job.delivered_at):
                        break
                    if job is None and _late(first, payload):
                        interaction = fake.interactions[payload["token"]]
                        if not interaction.acked:
                            return
                    await asyncio.sleep(0.005)
    async with open_bot(fake, data_dir, env=env) as second:
        job = await second.hub.job_by_idempotency_key(key)
        if job is not None:
            await second.hub.wait_for(job.id, timeout=patience(60))


async def run_journeys(
    fake: FakeDiscord,
    data_dir: Path,
    *,
    count: int,
    seed: int,
    concurrency: int = 8,
    rate: float = 0.15,
) -> Figures:
    """``count`` journeys under chaos (seeded), ``concurrency`` at a time; the verdicts."""
    from tests.fakes.discord import Chaos

    rng = random.Random(seed)
    fake.chaos = Chaos(seed=seed, rate=rate, retry_after_s=0.005)
    fake.global_per_s = 10_000
    figures = Figures()
    journeys = [
        Journey(i, KINDS[i % len(KINDS)], 1_400_000_000_000_100_000 + i, 1_300_000_000_100_000 + i)
        for i in range(count)
    ]
    rng.shuffle(journeys)
    size = len(fake.cdn_files["song.wav"])
    # two stems per message, so a restart can fall between two messages of one result
    env = {"request_limit_bytes": str(2 * size + 70_000)}
    started = time.perf_counter()
    plain = [j for j in journeys if j.kind != "restart"]
    restarts = [j for j in journeys if j.kind == "restart"]
    async with open_bot(fake, data_dir, env=env) as bot:
        queue: asyncio.Queue[Journey] = asyncio.Queue()
        for journey in plain:
            queue.put_nowait(journey)

        async def worker(number: int) -> None:
            mine = random.Random(seed * 1000 + number)
            while not queue.empty():
                journey = queue.get_nowait()
                await run_journey(bot, journey, mine)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    for journey in restarts:
        await run_restart_journey(fake, data_dir, journey, rng, env)
    figures.seconds = time.perf_counter() - started
    for journey in journeys:
        figures.journeys += 1
        figures.by_kind[journey.kind] += 1
        judge(fake, journey, figures)
    return figures


__all__ = ["KINDS", "Figures", "Journey", "judge", "open_bot", "run_journeys"]
