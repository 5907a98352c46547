"""Cancel on the progress message, several audio files, forwarded messages, queue position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stemhub_discord.render import progress_text

from stemhub import Job, JobRequest, JobStatus, Source, SourceKind
from stemhub.testing import FakeBackendControls, patience
from tests.discord import _payloads as p
from tests.discord.conftest import Bot, BotFactory
from tests.discord.test_guilds import OTHER_CHANNEL_ID, OTHER_GUILD_ID
from tests.discord.test_split import song_attachment


def cancel_id(bot: Bot, token: str) -> tuple[dict[str, Any], str]:
    """The progress message as Discord holds it, and its Cancel button's custom id."""
    (message,) = bot.fake.of_interaction(token)[:1]
    shown = bot.fake._message_json(message)
    ids = [c["custom_id"] for row in shown["components"] for c in row["components"]]
    (cancel,) = [i for i in ids if i.startswith("stemhub:cancel:")]
    return shown, cancel


async def test_the_progress_message_has_a_cancel_button(make_bot: BotFactory, song: Path) -> None:
    async with make_bot(controls=FakeBackendControls(delay_s=5.0, progress_steps=20)) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(payload)
        job = await bot.job_for(payload)
        await bot.until(
            lambda: any("Separating" in str(e.get("content")) for e in bot.edits(payload["token"]))
        )
        shown, cancel = cancel_id(bot, payload["token"])
        assert cancel == f"stemhub:cancel:{job.id}"
        stranger = p.component_click(shown, cancel, user_id=p.OTHER_USER_ID)
        bot.dispatch(stranger)
        await bot.until(lambda: bot.fake.find("POST", f"/{stranger['token']}/callback"))
        click = p.component_click(shown, cancel)
        bot.dispatch(click)
        job = await bot.hub.wait_for(job.id, timeout=patience(10))
    assert job.status is JobStatus.CANCELLED
    (refused,) = [c.json for c in bot.fake.find("POST", f"/{stranger['token']}/callback")]
    assert "Only the person who asked" in refused["data"]["embeds"][0]["description"]
    (done,) = [c.json for c in bot.fake.find("POST", f"/{click['token']}/callback")]
    assert done["data"]["content"] == "Cancelled the split of song.wav."
    assert done["data"]["flags"] == 64
    final = bot.edits(payload["token"])[-1]
    assert final["embeds"][0]["title"] == "The split was cancelled"


async def test_several_audio_files_ask_which_one(bot: Bot, song: Path) -> None:
    files = [
        p.attachment("a.wav", song.stat().st_size, bot.fake.cdn_url("song.wav")),
        p.attachment("b.wav", song.stat().st_size, bot.fake.cdn_url("song.wav")),
    ]
    menu = p.split_stems_menu(p.channel_message(attachments=files))
    bot.dispatch(menu)
    await bot.until(lambda: bot.fake.find("POST", f"/{menu['token']}/callback"))
    (asked,) = [c.json for c in bot.fake.find("POST", f"/{menu['token']}/callback")]
    assert asked["data"]["flags"] == 64 and "2 audio files" in asked["data"]["content"]
    (select,) = asked["data"]["components"][0]["components"]
    assert [o["label"] for o in select["options"]] == ["a.wav", "b.wav"]
    assert await bot.hub.list_jobs() == [], "nothing split before the choice"
    message = bot.fake._message_json(bot.fake.of_interaction(menu["token"])[0])
    choice = p.component_click(message, select["custom_id"], values=["1"])
    job = await bot.run(choice)
    assert job.request.source.filename == "b.wav"
    assert job.status is JobStatus.COMPLETED


async def test_split_stems_on_a_forwarded_message(bot: Bot, song: Path) -> None:
    forwarded = p.channel_message()
    forwarded["message_reference"] = {"type": 1, "channel_id": str(p.CHANNEL_ID)}
    forwarded["message_snapshots"] = [
        {
            "message": {
                "type": 0,
                "content": "from elsewhere",
                "attachments": [song_attachment(bot.fake, song)],
                "embeds": [],
                "timestamp": "2026-11-21T09:00:00.000000+00:00",
                "edited_timestamp": None,
                "flags": 0,
                "mentions": [],
                "mention_roles": [],
            }
        }
    ]
    job = await bot.run(p.split_stems_menu(forwarded))
    assert job.status is JobStatus.COMPLETED
    assert job.request.source.url == bot.fake.cdn_url("song.wav")


def test_a_queued_split_says_how_many_are_ahead() -> None:
    job = Job(
        request=JobRequest(source=Source(kind=SourceKind.URL, url="https://x.test/song.wav")),
        status=JobStatus.QUEUED,
    )
    assert progress_text(job, position=2).endswith("Queued: **song.wav** (2 ahead of it)")
    assert "ahead" not in progress_text(job, position=0)


def last_line(bot: Bot, token: str) -> str:
    edits = bot.edits(token)
    return str(edits[-1].get("content")) if edits else ""


async def test_a_split_waiting_for_the_engine_says_how_many_are_ahead(
    make_bot: BotFactory, song: Path
) -> None:
    """The engine runs one separation at a time, handed out in turn by server."""
    controls = FakeBackendControls(delay_s=60.0, progress_steps=60, concurrency=1)
    async with make_bot(controls=controls) as bot:

        def split(**where: Any) -> dict[str, Any]:
            return p.split_command(file=song_attachment(bot.fake, song), **where)

        holding = split()
        bot.dispatch(holding)
        await bot.until(lambda: controls.started)

        async def queue(payload: dict[str, Any]) -> None:
            bot.dispatch(payload)
            job_id = (await bot.job_for(payload)).id
            await bot.until(lambda: bot.hub.queue_position(job_id) is not None)

        here_next, here_later = split(), split()
        await queue(here_next)  # one after the other: a known order
        await queue(here_later)
        elsewhere = split(guild_id=OTHER_GUILD_ID, channel_id=OTHER_CHANNEL_ID)
        bot.dispatch(elsewhere)
        # the other server's one split comes before this server's second
        await bot.until(lambda: "(1 ahead)" in last_line(bot, elsewhere["token"]))
        await bot.until(lambda: "(next in line)" in last_line(bot, here_next["token"]))
        await bot.until(lambda: "(2 ahead)" in last_line(bot, here_later["token"]))
        assert last_line(bot, here_later["token"]) == (
            "\N{HOURGLASS WITH FLOWING SAND} Waiting for the engine: **song.wav** (2 ahead)"
        )
        assert "Separating" in last_line(bot, holding["token"])

        await bot.hub.cancel((await bot.job_for(holding)).id)
        # the line follows the queue: one turn later, one fewer ahead
        await bot.until(lambda: "Separating" in last_line(bot, here_next["token"]))
        await bot.until(lambda: "(next in line)" in last_line(bot, elsewhere["token"]))
        await bot.until(lambda: "(1 ahead)" in last_line(bot, here_later["token"]))
