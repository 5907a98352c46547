"""Delivery that never goes silent: DMs, closed DMs, a dead interaction token, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stemhub import JobStatus, Stage
from stemhub.testing import FakeBackendControls, patience
from tests.discord import _payloads as p
from tests.discord.conftest import PUBLIC_URL, Bot, BotFactory, LateSeparation
from tests.discord.test_split import song_attachment
from tests.fakes.discord import APP_ID, CHANNEL_ID, USER_ID, FakeDiscord


def original_edits(bot: Bot, token: str) -> list[dict[str, object]]:
    return [
        c.json for c in bot.fake.find("PATCH", f"/webhooks/{APP_ID}/{token}/messages/@original")
    ]


async def test_dm_delivery_opens_a_dm_and_says_so_in_place(bot: Bot, song: Path) -> None:
    payload = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH", dm=True)
    job = await bot.run(payload)

    (defer,) = bot.fake.find("POST", "/callback")
    assert defer.json == {"type": 5, "data": {"flags": 64}}, "DM requests defer privately"
    (opened,) = bot.fake.find("POST", "/users/@me/channels")
    assert opened.json == {"recipient_id": USER_ID}
    (dm,) = [c for c in bot.fake.find("POST", "/messages") if "/channels/" in c.path]
    assert dm.json["embeds"][0]["title"] == "Stems of song.wav"
    assert len(dm.files) == 2
    assert dm.json["nonce"] and dm.json["enforce_nonce"] is True
    assert "to your DMs" in str(original_edits(bot, payload["token"])[-1]["content"])
    assert job.delivery["sent"]["result"]["via"] == "dm"


async def test_a_guild_can_send_every_result_by_dm(make_bot: BotFactory, song: Path) -> None:
    guilds = f'{{"{p.GUILD_ID}": {{"dm_results": true}}}}'
    async with make_bot(env={"guilds": guilds}) as bot:
        job = await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
    assert job.delivery["sent"]["result"]["via"] == "dm"
    assert bot.fake.find("POST", "/users/@me/channels")


async def test_closed_dms_fall_back_to_a_private_answer_in_place(bot: Bot, song: Path) -> None:
    bot.fake.closed_dms.add(USER_ID)
    payload = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH", dm=True)
    job = await bot.run(payload)

    assert len(bot.fake.refused(50007)) == 1, "one DM attempt, refused with 50007"
    result = original_edits(bot, payload["token"])[-1]
    embed = result["embeds"][0]  # type: ignore[index]
    assert embed["title"] == "Stems of song.wav"
    assert "could not DM you" in str(embed["fields"][-1]["value"])
    assert job.delivery["dm_closed"] is True
    assert job.delivery["sent"]["result"]["via"] == "interaction"
    assert job.status is JobStatus.COMPLETED and "error" not in job.delivery


def late(fake: FakeDiscord) -> tuple[tuple[str, object], ...]:
    return (("late", LateSeparation(fake.clock)),)


async def test_after_15_minutes_the_bot_token_posts_in_the_channel(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path
) -> None:
    async with make_bot(extra_plugins=late(fake_discord)) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
        job = await bot.run(payload)

    results = [e for e in original_edits(bot, payload["token"]) if e.get("embeds")]
    assert not results, "no edit with a dead token"
    assert not bot.fake.refused(50027), "the bot knew the token was dead: it did not try"
    (post,) = bot.fake.find("POST", f"/channels/{CHANNEL_ID}/messages")
    assert post.headers["Authorization"] == "Bot fake-bot-token"
    assert post.json["content"].startswith(f"<@{USER_ID}>")
    assert post.json["allowed_mentions"]["parse"] == []
    assert post.json["allowed_mentions"]["users"] == [USER_ID]
    assert post.json["embeds"][0]["title"] == "Stems of song.wav"
    assert len(post.files) == 2
    assert len(post.json["nonce"]) <= 25 and post.json["enforce_nonce"] is True
    assert job.delivery["token_dead"] is True


async def test_a_401_on_the_interaction_token_falls_back_to_the_channel(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(controls=FakeBackendControls(delay_s=0.5)) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(payload)
        job = await bot.job_for(payload)
        bot.fake.dead_tokens.add(payload["token"])
        job = await bot.hub.wait_for(job.id, timeout=patience(10))

    assert job.status is JobStatus.COMPLETED
    assert "error" not in job.delivery
    assert job.delivery["token_dead"] is True
    (post,) = bot.fake.find("POST", f"/channels/{CHANNEL_ID}/messages")
    assert post.json["embeds"][0]["title"] == "Stems of song.wav"


async def test_a_channel_the_bot_may_not_post_in_falls_back_to_dm(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path
) -> None:
    fake_discord.forbidden_channels.add(CHANNEL_ID)
    async with make_bot(extra_plugins=late(fake_discord)) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        job = await bot.run(payload)
    assert job.delivery["sent"]["result"]["via"] == "dm"
    assert bot.fake.find("POST", "/users/@me/channels")


async def test_nowhere_to_post_is_recorded_not_silently_dropped(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path
) -> None:
    fake_discord.forbidden_channels.add(CHANNEL_ID)
    fake_discord.closed_dms.add(USER_ID)
    async with make_bot(extra_plugins=late(fake_discord), delivery_attempts=2) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        job = await bot.run(payload, within_s=20)
    assert job.delivery["error"]["code"] == "DELIVERY_FAILED"
    assert job.stage is Stage.DONE


async def test_a_restart_in_the_middle_of_delivery_never_posts_twice(
    make_bot: BotFactory, song: Path, tmp_path: Path
) -> None:
    size = song.stat().st_size
    data_dir = tmp_path / "shared-data"
    release = asyncio.Event()
    two_per_message = {"request_limit_bytes": str(2 * size + 70_000)}
    async with make_bot(data_dir=data_dir, env=two_per_message) as first:
        first.fake.hold_followups = release
        payload = p.split_command(
            file=song_attachment(first.fake, song), stems="FOUR_STEMS", size_limit=size + 10
        )
        first.dispatch(payload)
        job = await first.job_for(payload)
        async with asyncio.timeout(patience(10)):
            while True:
                stored = await first.hub.store.get_job(job.id)
                if stored is not None and "result" in stored.delivery.get("sent", {}):
                    break
                await asyncio.sleep(0.02)
    # the first hub stopped while its follow-up hung; a new one picks the job up
    first.fake.hold_followups = None
    release.set()
    async with make_bot(data_dir=data_dir, env=two_per_message) as second:
        job = await second.hub.wait_for(job.id, timeout=patience(10))
    results = [e for e in original_edits(second, payload["token"]) if e.get("embeds")]
    assert len(results) == 1, "the result was posted once"
    followups = second.fake.find("POST", f"/webhooks/{APP_ID}/{payload['token']}")
    assert len(followups) == 1
    assert len(followups[0].files) == 2
    assert set(job.delivery["sent"]) == {"result", "files:bass,other"}


async def test_the_interaction_token_is_stored_only_sealed(bot: Bot, song: Path) -> None:
    payload = p.split_command(file=song_attachment(bot.fake, song))
    job = await bot.run(payload)
    async with bot.hub.store.engine.connect() as conn:
        raw = (await conn.exec_driver_sql("SELECT data FROM jobs")).scalar_one()
    assert payload["token"] not in raw
    assert job.origin.context["token"].startswith("sealed:")


async def test_the_result_links_the_result_page_and_shows_the_waveforms(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(result_page=True) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH", dm=True)
        job = await bot.run(payload)
    (dm,) = [c for c in bot.fake.find("POST", "/messages") if "/channels/" in c.path]
    embed = dm.json["embeds"][0]
    names = sorted(name for name, _data in dm.files.values())
    assert len(names) == 3 and names[-1] == "waveforms.png", names
    png = next(data for name, data in dm.files.values() if name == "waveforms.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert embed["image"]["url"] == "attachment://waveforms.png"
    assert embed["url"].startswith(f"{PUBLIC_URL}/results/{job.id}?")
    assert "Listen, solo and mix" in str(embed["fields"])
