"""/split and "Split stems": checks before download, defer, progress, the result as sent."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from stemhub_discord.texts import ERROR_TEXT

from stemhub import (
    ErrorCode,
    JobRequest,
    JobStatus,
    Origin,
    RequestRejected,
    Source,
    SourceKind,
    StemhubError,
    StemSet,
)
from stemhub.testing import FakeBackendControls
from tests.discord import _payloads as p
from tests.discord.conftest import PUBLIC_URL, Bot, BotFactory
from tests.fakes.discord import APP_ID, CHANNEL_ID, USER_ID, FakeDiscord


def song_attachment(fake: FakeDiscord, song: Path, **kw: object) -> dict[str, object]:
    return p.attachment("song.wav", song.stat().st_size, fake.cdn_url("song.wav"), **kw)  # type: ignore[arg-type]


def final_edit(fake: FakeDiscord, token: str) -> dict[str, object]:
    edits = fake.find("PATCH", f"/webhooks/{APP_ID}/{token}/messages/@original")
    assert edits, "the deferred response was never edited"
    body = edits[-1].json
    assert isinstance(body, dict)
    return body


async def test_split_defers_downloads_and_attaches_the_stems(bot: Bot, song: Path) -> None:
    payload = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH", fmt="WAV")
    job = await bot.run(payload)

    assert job.status is JobStatus.COMPLETED
    assert job.request.source.kind is SourceKind.URL
    assert job.request.source.size_bytes == song.stat().st_size
    first = bot.fake.calls[bot.fake.calls.index(bot.fake.find("POST", "/callback")[0])]
    assert first.path == f"/api/v10/interactions/{payload['id']}/{payload['token']}/callback"
    assert first.json == {"type": 5}
    (download,) = bot.fake.find("GET", "/cdn/attachments/")
    assert first.at < download.at, "the command was not deferred before the download"

    edits = bot.fake.find("PATCH", f"/webhooks/{APP_ID}/{payload['token']}/messages/@original")
    assert any(word in edits[0].json["content"] for word in ("Queued", "Downloading"))
    result = edits[-1]
    embed = result.json["embeds"][0]
    assert embed["title"] == "Stems of song.wav"
    assert "120 BPM" in embed["description"] and "A minor" in embed["description"]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert any("vocals" in name for name in fields)
    assert any("instrumental" in name for name in fields)
    assert all("attached" in value for name, value in fields.items() if name.strip("\u200b"))
    uploaded = sorted(name for name, _data in result.files.values())
    assert uploaded == ["song - instrumental.wav", "song - vocals.wav"]
    assert all(data == song.read_bytes() for _name, data in result.files.values())
    assert [a["filename"] for a in result.json["attachments"]] == [
        "song - vocals.wav",
        "song - instrumental.wav",
    ]
    custom_ids = [c["custom_id"] for row in result.json["components"] for c in row["components"]]
    assert custom_ids == [f"stemhub:links:{job.id}", f"stemhub:again:{job.id}"]
    assert job.delivery["sent"]["result"]["via"] == "interaction"


async def test_stems_too_large_to_attach_are_sent_as_links(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot() as bot:
        payload = p.split_command(
            file=song_attachment(bot.fake, song), stems="FOUR_STEMS", size_limit=1000
        )
        job = await bot.run(payload)
    body = final_edit(bot.fake, payload["token"])
    assert "attachments" not in body
    fields = [f["value"] for f in body["embeds"][0]["fields"]]
    links = [value for value in fields if f"]({PUBLIC_URL}/files/{job.id}/" in value]
    assert len(links) == 4
    assert "Links expire <t:" in fields[-1]


async def test_a_wav_too_large_to_attach_is_attached_as_an_mp3_that_fits(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot() as bot:
        payload = p.split_command(
            file=song_attachment(bot.fake, song), stems="BOTH", fmt="WAV", size_limit=100_000
        )
        job = await bot.run(payload)
    assert song.stat().st_size > 100_000
    (call,) = [c for c in bot.fake.calls if c.files and c.method == "PATCH"]
    files = sorted(call.files.values())
    assert [name for name, _ in files] == ["song - instrumental.mp3", "song - vocals.mp3"]
    assert all(data[:3] == b"ID3" or data[:2] == b"\xff\xfb" for _, data in files)
    assert sum(len(data) for _, data in files) <= 100_000
    embed = call.json["embeds"][0]
    note = embed["fields"][-1]["value"]
    assert "attached as MP3 to fit Discord's upload limit; the links give the WAV" in note
    assert f"/files/{job.id}/vocals.wav" in embed["fields"][0]["value"]
    assert job.delivery["mp3"] == ["instrumental", "vocals"]


async def test_stems_are_spread_over_messages_that_each_fit(
    make_bot: BotFactory, song: Path
) -> None:
    size = song.stat().st_size
    async with make_bot(env={"request_limit_bytes": str(2 * size + 70_000)}) as bot:
        bot.fake.request_cap = 2 * size + 70_000
        payload = p.split_command(
            file=song_attachment(bot.fake, song), stems="FOUR_STEMS", size_limit=size + 10
        )
        job = await bot.run(payload)
    result = final_edit(bot.fake, payload["token"])
    assert len(result["attachments"]) == 2
    (more,) = bot.fake.find("POST", f"/webhooks/{APP_ID}/{payload['token']}")
    assert len(more.files) == 2
    assert more.json["content"] == "More stems (2/2): bass, other"
    assert set(job.delivery["sent"]) == {"result", "files:bass,other"}


async def test_a_file_over_the_limit_is_refused_before_anything_is_downloaded(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(max_upload_bytes=1000) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(payload)
        await bot.settle(calls=3)
        assert await bot.hub.store.list_jobs() == []
    (answer,) = bot.fake.find("POST", "/callback")
    assert answer.json["type"] == 4
    assert answer.json["data"]["flags"] == 64
    assert answer.json["data"]["embeds"][0]["title"] == "That file is too big"
    assert not bot.fake.find("GET", "/cdn/")


async def test_a_file_that_is_not_audio_is_refused_on_the_spot(bot: Bot, song: Path) -> None:
    picture = p.attachment("cat.png", 2000, bot.fake.cdn_url("cat.png"), content_type="image/png")
    bot.dispatch(p.split_command(file=picture))
    await bot.settle(calls=3)
    (answer,) = bot.fake.find("POST", "/callback")
    embed = answer.json["data"]["embeds"][0]
    assert embed["title"] == "That is not an audio file I can read"
    assert "cat.png (image/png)" in embed["description"]
    assert embed["footer"]["text"] == ErrorCode.UNSUPPORTED_FORMAT.value
    assert await bot.hub.store.list_jobs() == []


async def test_split_without_file_or_link_asks_for_one(bot: Bot) -> None:
    bot.dispatch(p.split_command())
    await bot.settle(calls=3)
    (answer,) = bot.fake.find("POST", "/callback")
    assert "Attach an audio file" in answer.json["data"]["embeds"][0]["description"]


async def test_one_stem_and_mp3_choices_reach_the_job(bot: Bot, song: Path) -> None:
    payload = p.split_command(file=song_attachment(bot.fake, song), stems="drums", fmt="MP3")
    job = await bot.run(payload)
    assert job.request.stems == ["drums"]
    assert job.request.stem_set is StemSet.FOUR_STEMS
    assert list(job.outputs) == ["drums"]
    result = final_edit(bot.fake, payload["token"])
    assert [a["filename"] for a in result["attachments"]] == ["song - drums.mp3"]


async def test_split_stems_on_someone_elses_message(bot: Bot, song: Path) -> None:
    posted = p.channel_message(content="new mix!", attachments=[song_attachment(bot.fake, song)])
    payload = p.split_stems_menu(posted)
    job = await bot.run(payload)
    assert job.status is JobStatus.COMPLETED
    assert job.request.source.url == bot.fake.cdn_url("song.wav")
    assert job.request.stems is StemSet.FOUR_STEMS
    assert job.origin.user_id == str(USER_ID)


async def test_split_stems_takes_an_audio_link_from_the_message(bot: Bot) -> None:
    link = bot.fake.cdn_url("song.wav").replace("song.wav", "song.wav")
    posted = p.channel_message(content=f"listen: {link} (demo)")
    job = await bot.run(p.split_stems_menu(posted))
    assert job.request.source.kind is SourceKind.URL
    assert job.request.source.url == link
    assert job.status is JobStatus.COMPLETED


async def test_split_stems_on_a_message_without_audio_says_so(bot: Bot) -> None:
    bot.dispatch(p.split_stems_menu(p.channel_message(content="hello there")))
    await bot.settle(calls=3)
    (answer,) = bot.fake.find("POST", "/callback")
    assert answer.json["data"]["flags"] == 64
    assert "no audio file or audio link" in answer.json["data"]["embeds"][0]["description"]


async def test_progress_edits_are_coalesced(make_bot: BotFactory, song: Path) -> None:
    controls = FakeBackendControls(delay_s=2.0, progress_steps=40)
    async with make_bot(controls=controls, env={"progress_edit_interval_s": "0.5"}) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        job = await bot.run(payload)
    edits = bot.fake.find("PATCH", f"/webhooks/{APP_ID}/{payload['token']}/messages/@original")
    progress = edits[:-1]
    texts = [edit.json["content"] for edit in progress]
    assert any("Separating" in text for text in texts)
    assert 2 <= len(progress) <= 8, texts
    gaps = [b.at - a.at for a, b in itertools.pairwise(progress)]
    assert min(gaps) >= 0.45, gaps
    assert job.delivery["progress_edits"] == len(progress)


async def test_a_failed_job_tells_the_user_why(make_bot: BotFactory, song: Path) -> None:
    controls = FakeBackendControls(
        fail_with=StemhubError(ErrorCode.INSUFFICIENT_CREDITS, "No credits left."), fail_times=1
    )
    async with make_bot(controls=controls) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        job = await bot.run(payload)
    assert job.status is JobStatus.FAILED
    embed = final_edit(bot.fake, payload["token"])["embeds"][0]
    assert embed["title"] == "The bot has run out of separation credits"
    assert "No credits left." in embed["description"]


async def test_an_unreachable_link_fails_with_a_clear_message(bot: Bot) -> None:
    payload = p.split_command(url=bot.fake.cdn_url("gone.mp3"))
    job = await bot.run(payload)
    assert job.status is JobStatus.FAILED
    embed = final_edit(bot.fake, payload["token"])["embeds"][0]
    assert embed["title"] == "I could not download the audio"
    assert "Traceback" not in embed["description"]
    assert CHANNEL_ID  # the channel of the payloads


@pytest.mark.slow
async def test_split_through_the_local_engine(make_bot: BotFactory, song: Path) -> None:
    """The full flow with the embedded engine: real separation, real files uploaded."""
    async with make_bot(default_backend="local") as bot:
        if "local" not in bot.hub.backend_factories:
            pytest.skip("the local backend is not installed in this checkout")
        if (await bot.hub.backend("local").describe()).get("model_bytes") is None:
            pytest.skip("the local engine's model file is not in this checkout yet")
        payload = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH", fmt="WAV")
        job = await bot.run(payload, within_s=60)
    assert job.status is JobStatus.COMPLETED, job.error_message
    result = final_edit(bot.fake, payload["token"])
    assert [a["filename"] for a in result["attachments"]] == [
        "song - vocals.wav",
        "song - instrumental.wav",
    ]
    (call,) = [c for c in bot.fake.calls if c.files and c.method == "PATCH"]
    for _name, data in call.files.values():
        assert data[:4] == b"RIFF" and len(data) > 1000


async def test_the_validate_hook_guards_requests_that_skip_the_command(
    make_bot: BotFactory, song: Path
) -> None:
    """Another path into the hub with a Discord origin meets the same guild policy."""
    policy = f'{{"{p.GUILD_ID}": {{"allowed_channels": [42]}}}}'
    async with make_bot(env={"guilds": policy}) as bot:
        request = JobRequest(
            source=Source(kind=SourceKind.FILE, path=str(song)),
            origin=Origin(
                platform="discord", user_id="1", channel_id="7", guild_id=str(p.GUILD_ID)
            ),
        )
        with pytest.raises(RequestRejected) as refused:
            await bot.hub.submit(request)
        allowed = request.model_copy(
            update={"origin": request.origin.model_copy(update={"channel_id": "42"})}
        )
        job = await bot.hub.submit(allowed)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert job.origin.channel_id == "42"


def test_every_error_code_has_words_for_discord_users() -> None:
    assert set(ERROR_TEXT) == set(ErrorCode)
    for title, hint in ERROR_TEXT.values():
        assert title and hint and not title.endswith(".")
