"""A server that removes the bot: its jobs are cancelled and nothing more is posted there.

The server events come as the gateway sends them (GUILD_CREATE after READY, then
GUILD_DELETE), handed to discord.py's own parsers; an outage (``unavailable: true``)
must change nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from stemhub_discord.guilds import RemovedGuilds

from stemhub import JobStatus
from stemhub.testing import FakeBackendControls, patience
from tests.discord import _payloads as p
from tests.discord.conftest import Bot, BotFactory
from tests.discord.test_split import final_edit, song_attachment
from tests.fakes.discord import CHANNEL_ID, GUILD_ID

OTHER_GUILD_ID = 1200000000000000099
OTHER_CHANNEL_ID = 1300000000000000099


async def test_the_jobs_of_a_server_that_removed_the_bot_are_cancelled_silently(
    make_bot: BotFactory, song: Path
) -> None:
    # one separation at a time: the second split of the server waits for its turn
    controls = FakeBackendControls(delay_s=30.0, progress_steps=60, concurrency=1)
    async with make_bot(controls=controls) as bot:
        bot.gateway("GUILD_CREATE", bot.fake.guild_create(GUILD_ID))
        bot.gateway("GUILD_CREATE", bot.fake.guild_create(OTHER_GUILD_ID))
        running = p.split_command(file=song_attachment(bot.fake, song))
        waiting = p.split_command(file=song_attachment(bot.fake, song), user_id=p.OTHER_USER_ID)
        elsewhere = p.split_command(
            file=song_attachment(bot.fake, song),
            guild_id=OTHER_GUILD_ID,
            channel_id=OTHER_CHANNEL_ID,
        )
        bot.dispatch(running)
        await bot.until(lambda: controls.started)  # it holds the engine
        bot.dispatch(waiting)
        bot.dispatch(elsewhere)
        jobs = [await bot.job_for(payload) for payload in (running, waiting, elsewhere)]
        await bot.until(lambda: bot.edits(running["token"]) and bot.edits(waiting["token"]))
        seen = len(bot.fake.calls)

        bot.gateway("GUILD_DELETE", bot.fake.guild_delete(GUILD_ID))
        first = await bot.hub.wait_for(jobs[0].id, timeout=patience(10))
        second = await bot.hub.wait_for(jobs[1].id, timeout=patience(10))
        other = await bot.hub.require_job(jobs[2].id)
        after = bot.fake.calls[seen:]

    assert (first.status, second.status) == (JobStatus.CANCELLED, JobStatus.CANCELLED)
    assert first.delivery["skipped"] == "the bot was removed from the server"
    assert controls.cancelled == [f"fake-{first.id}-0"], "its separation was stopped too"
    assert not any(second.id in started for started in controls.started), "never started"
    theirs = (running["token"], waiting["token"], f"/channels/{CHANNEL_ID}/")
    late = [c for c in after if any(mark in c.path for mark in theirs)]
    # at most a progress edit already on its way when Discord said so; no notice, no post
    assert all(c.method == "PATCH" and "embeds" not in c.json for c in late), late
    assert len(late) <= 2
    assert other.status is JobStatus.RUNNING, "another server's job goes on"


async def test_a_server_outage_cancels_nothing(make_bot: BotFactory, song: Path) -> None:
    controls = FakeBackendControls(delay_s=1.0, progress_steps=10)
    async with make_bot(controls=controls) as bot:
        bot.gateway("GUILD_CREATE", bot.fake.guild_create(GUILD_ID))
        payload = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(payload)
        job = await bot.job_for(payload)
        bot.gateway("GUILD_DELETE", bot.fake.guild_delete(GUILD_ID, outage=True))
        guild = bot.frontend.client.get_guild(GUILD_ID)
        job = await bot.hub.wait_for(job.id, timeout=patience(10))
    assert guild is not None and guild.unavailable, "discord.py saw the outage"
    assert job.status is JobStatus.COMPLETED
    assert "skipped" not in job.delivery
    assert final_edit(bot.fake, payload["token"])["embeds"][0]["title"] == "Stems of song.wav"


async def test_a_split_asked_after_the_bot_was_added_again_is_delivered(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot() as bot:
        bot.gateway("GUILD_CREATE", bot.fake.guild_create(GUILD_ID))
        bot.gateway("GUILD_DELETE", bot.fake.guild_delete(GUILD_ID))
        bot.gateway("GUILD_CREATE", bot.fake.guild_create(GUILD_ID))
        payload = p.split_command(file=song_attachment(bot.fake, song))
        job = await bot.run(payload)
    assert job.status is JobStatus.COMPLETED
    assert "skipped" not in job.delivery
    assert final_edit(bot.fake, payload["token"])["embeds"][0]["title"] == "Stems of song.wav"


async def test_a_removal_is_remembered_across_restarts(bot: Bot, song: Path) -> None:
    """Another process (or this one restarted) delivers nothing to a server that left."""
    before = await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
    bot.gateway("GUILD_CREATE", bot.fake.guild_create(GUILD_ID))
    bot.gateway("GUILD_DELETE", bot.fake.guild_delete(GUILD_ID))
    await bot.until(lambda: bot.frontend.removed_guilds.known_removed(before))
    fresh = RemovedGuilds(bot.hub)  # what a restarted bot knows: only the store
    assert not fresh.known_removed(before)
    # the hub notes the removal in memory first, then in the store: wait for the store
    async with asyncio.timeout(patience(5)):
        while not await fresh.asked_before_removal(before):  # noqa: ASYNC110 - polls the store
            await asyncio.sleep(0.01)
    after = await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
    assert not await fresh.asked_before_removal(after)
