"""Never silent: each way Discord can refuse a result ends with the person told, privately
when they asked privately. The simulator refuses as Discord does; the bot must fall back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stemhub import ErrorCode, JobStatus, StemhubError
from stemhub.testing import FakeBackendControls, patience, write_test_tone
from tests.discord import _payloads as p
from tests.discord.conftest import PUBLIC_URL, Bot, BotFactory, LateSeparation
from tests.discord.test_split import song_attachment
from tests.fakes.discord import APP_ID, CHANNEL_ID, USER_ID, FakeDiscord


def late(fake: FakeDiscord) -> tuple[tuple[str, object], ...]:
    return (("late", LateSeparation(fake.clock)),)


def channel_posts(bot: Bot) -> list[dict[str, object]]:
    return [c.json for c in bot.fake.find("POST", f"/channels/{CHANNEL_ID}/messages")]


def everything_said(bot: Bot) -> str:
    return "\n".join(m.text for m in bot.fake.messages)


# what Discord refuses in the result itself


async def test_a_result_too_large_for_the_request_is_sent_without_files(
    make_bot: BotFactory, song: Path
) -> None:
    size = song.stat().st_size
    async with make_bot() as bot:
        bot.fake.request_cap = size + size // 2
        payload = p.split_command(
            file=song_attachment(bot.fake, song), stems="BOTH", size_limit=size + 10
        )
        job = await bot.run(payload)
    assert len(bot.fake.refused(40005)) == 1, "both stems in one request: 413 / 40005"
    result = bot.edits(payload["token"])[-1]
    assert not result.get("attachments")
    fields = [f["value"] for f in result["embeds"][0]["fields"]]
    assert sum(f"]({PUBLIC_URL}/files/{job.id}/" in v for v in fields) == 2
    assert job.delivery["level"] == "bare" and "error" not in job.delivery


async def test_links_too_long_for_an_embed_come_as_plain_text(
    make_bot: BotFactory, song: Path
) -> None:
    long_base = PUBLIC_URL + "/" + "signed" * 180
    async with make_bot(public_url=long_base) as bot:
        payload = p.split_command(
            file=song_attachment(bot.fake, song), stems="FOUR_STEMS", size_limit=1000
        )
        job = await bot.run(payload)
    assert not bot.fake.refused(), "nothing Discord would refuse was sent"
    texts = [bot.edits(payload["token"])[-1]["content"]]
    texts += [c.json["content"] for c in bot.fake.find("POST", f"/webhooks/{APP_ID}/")]
    joined = "\n".join(str(t) for t in texts)
    assert joined.startswith("Your stems of song.wav are ready.")
    assert all(f"/files/{job.id}/{stem}" in joined for stem in ("vocals", "drums", "bass"))
    assert all(len(str(t)) <= 2000 for t in texts)


# attachment limits by context, and packing per stem


async def test_dms_take_10_mib_files_whatever_the_guilds_boost(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    big = write_test_tone(tmp_path / "big.wav", seconds=64.0)
    assert big.stat().st_size > 10 * 1024 * 1024
    async with make_bot() as bot:
        bot.fake.cdn_files["big.wav"] = big.read_bytes()
        attachment = p.attachment("big.wav", big.stat().st_size, bot.fake.cdn_url("big.wav"))
        payload = p.split_command(
            file=attachment, stems="BOTH", fmt="WAV", dm=True, size_limit=50 * 1024 * 1024
        )
        job = await bot.run(payload, within_s=60)
    assert not bot.fake.refused(40005)
    (dm,) = [m for m in bot.fake.messages if m.kind == "dm"]
    assert sorted(dm.files) == ["big - instrumental.mp3", "big - vocals.mp3"]
    assert job.delivery["sent"]["result"]["via"] == "dm"


async def test_every_stem_that_fits_is_attached_however_many_messages(
    make_bot: BotFactory, song: Path
) -> None:
    size = song.stat().st_size
    async with make_bot(env={"request_limit_bytes": str(size + 70_000)}) as bot:
        payload = p.split_command(
            file=song_attachment(bot.fake, song), stems="SIX_STEMS", size_limit=size + 10
        )
        job = await bot.run(payload)
    files = [name for m in bot.fake.of_interaction(payload["token"]) for name in m.files]
    assert len(files) == 6, "one stem per message, six messages, none left out"
    assert "too large" not in everything_said(bot)
    assert len(job.delivery["sent"]) == 6


async def test_stems_too_large_never_show_operator_advice(make_bot: BotFactory, song: Path) -> None:
    async with make_bot(public_url=None) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song), size_limit=1000)
        await bot.run(payload)
    said = everything_said(bot)
    assert "too large to attach here (Discord takes files up to 1000 B here)" in said
    assert "STEMHUB_" not in said


# where the result goes when a place refuses


@pytest.mark.parametrize(
    ("switch", "code"),
    [("forbidden_channels", 50013), ("no_access_channels", 50001), ("archived_threads", 50083)],
)
async def test_a_channel_that_refuses_the_bot_falls_back_to_dm(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path, switch: str, code: int
) -> None:
    getattr(fake_discord, switch).add(CHANNEL_ID)
    async with make_bot(extra_plugins=late(fake_discord)) as bot:
        job = await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
    assert bot.fake.refused(code)
    assert job.delivery["sent"]["result"]["via"] == "dm"


@pytest.mark.parametrize(("switch", "code"), [("closed_dms", 50007), ("strangers", 50278)])
async def test_a_dm_refused_falls_back_to_a_private_answer_in_place(
    bot: Bot, song: Path, switch: str, code: int
) -> None:
    getattr(bot.fake, switch).add(USER_ID)
    payload = p.split_command(file=song_attachment(bot.fake, song), dm=True)
    job = await bot.run(payload)
    assert bot.fake.refused(code)
    (result,) = [m for m in bot.fake.of_interaction(payload["token"]) if "Stems of" in m.text]
    assert result.private_to == USER_ID
    assert job.delivery["sent"]["result"]["via"] == "interaction"


async def test_a_private_request_never_becomes_a_channel_ping(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path
) -> None:
    fake_discord.closed_dms.add(USER_ID)
    async with make_bot(extra_plugins=late(fake_discord), delivery_attempts=2) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song), dm=True)
        job = await bot.run(payload, within_s=20)
    assert not channel_posts(bot), "nothing of a dm:true request in the channel"
    assert all(m.private_to == USER_ID for m in bot.fake.messages)
    assert len(bot.fake.refused(50007)) >= 3, "two tries and the plain notice, all by DM"
    assert job.status is JobStatus.COMPLETED


# the 15-minute token


@pytest.mark.parametrize(("dm", "where"), [(False, f"<#{CHANNEL_ID}>"), (True, "your DMs")])
async def test_before_the_token_dies_the_message_says_where_the_result_will_come(
    make_bot: BotFactory, song: Path, dm: bool, where: str
) -> None:
    controls = FakeBackendControls(delay_s=3.0, progress_steps=30)
    async with make_bot(controls=controls) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song), dm=dm)
        bot.dispatch(payload)
        job = await bot.job_for(payload)
        await bot.until(lambda: bot.edits(payload["token"]))
        bot.fake.clock.advance(14 * 60)
        await bot.until(lambda: any("Still working" in str(e) for e in bot.edits(payload["token"])))
        bot.fake.clock.advance(2 * 60)
        job = await bot.hub.wait_for(job.id, timeout=patience(15))
    warning = bot.edits(payload["token"])[-1]["content"]
    assert "Still working on **song.wav**" in warning and where in warning
    assert not bot.fake.refused(50027), "nothing sent on the dead token"
    via = job.delivery["sent"]["result"]["via"]
    assert via == ("dm" if dm else "channel")
    if not dm:
        assert channel_posts(bot)[0]["content"].startswith(f"<@{USER_ID}>")


# notify_undelivered: plain text, private stays private


async def test_undelivered_is_told_in_plain_text_in_the_channel(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path
) -> None:
    async with make_bot(extra_plugins=late(fake_discord)) as bot:
        job = await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
        error = StemhubError(ErrorCode.DELIVERY_FAILED, "Discord kept refusing the files.")
        await bot.frontend.notify_undelivered(job, error)
    notice = channel_posts(bot)[-1]
    assert notice["content"].startswith(f"<@{USER_ID}> I could not send you the stems")
    assert "Discord kept refusing the files." in notice["content"]
    assert f"{PUBLIC_URL}/files/{job.id}/vocals" in notice["content"]
    assert not notice.get("embeds") and not notice.get("components")


async def test_undelivered_private_request_is_told_by_dm_only(
    make_bot: BotFactory, fake_discord: FakeDiscord, song: Path
) -> None:
    async with make_bot(extra_plugins=late(fake_discord)) as bot:
        job = await bot.run(p.split_command(file=song_attachment(bot.fake, song), dm=True))
        before = len(channel_posts(bot))
        bot.fake.closed_dms.add(USER_ID)
        error = StemhubError(ErrorCode.DELIVERY_FAILED, "no way")
        with pytest.raises(StemhubError):
            await bot.frontend.notify_undelivered(job, error)
    assert len(channel_posts(bot)) == before == 0


# the buttons


async def test_split_again_says_so_when_discords_link_expired(bot: Bot, song: Path) -> None:
    upload = p.attachment("song.wav", song.stat().st_size, bot.fake.cdn_url("song.wav", ttl_s=120))
    command = p.split_command(file=upload, stems="BOTH")
    first = await bot.run(command)
    bot.fake.clock.advance(600)
    message = bot.fake._message_json(bot.fake.of_interaction(command["token"])[0])
    click = p.component_click(
        message, f"stemhub:again:{first.id}", values=["VOCALS"], created=bot.fake.clock.datetime()
    )
    bot.dispatch(click)
    await bot.until(lambda: bot.fake.find("POST", f"/{click['token']}/callback"))
    (answer,) = [c.json for c in bot.fake.find("POST", f"/{click['token']}/callback")]
    assert answer["data"]["flags"] == 64
    assert "link to the original upload has expired" in answer["data"]["embeds"][0]["description"]
    assert len(bot.fake.find("GET", "/cdn/")) == 1, "no second download"


async def test_fresh_links_after_the_cleanup_say_the_stems_are_gone(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot() as bot:
        command = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
        job = await bot.run(command)
        for output in job.outputs.values():
            path = bot.hub.output_path(job, output)
            assert path is not None
            path.unlink()
        message = bot.fake._message_json(bot.fake.of_interaction(command["token"])[0])
        click = p.component_click(message, f"stemhub:links:{job.id}")
        bot.dispatch(click)
        await bot.until(lambda: bot.edits(click["token"]))
    embed = bot.edits(click["token"])[-1]["embeds"][0]
    assert embed["title"] == "This result has expired"
    assert "separation service" not in embed["description"]
