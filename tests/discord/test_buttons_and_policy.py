"""The result's buttons, access control per guild, quotas, /stemhub queue, unexpected errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stemhub import ErrorCode, StemSet, hookimpl
from stemhub.config import QuotaSettings
from tests.discord import _payloads as p
from tests.discord.conftest import PUBLIC_URL, Bot, BotFactory
from tests.discord.test_guilds import OTHER_CHANNEL_ID, OTHER_GUILD_ID
from tests.discord.test_split import song_attachment
from tests.fakes.discord import APP_ID, GUILD_ID, ROLE_ID


def result_message(bot: Bot, token: str) -> dict[str, Any]:
    """The result message as Discord stored it (components included)."""
    edit = bot.fake.find("PATCH", f"/webhooks/{APP_ID}/{token}/messages/@original")[-1]
    return bot.fake.message(p.CHANNEL_ID, edit.json, edit.files)


def answers(bot: Bot, payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [c.json for c in bot.fake.find("POST", f"/interactions/{payload['id']}/")]


async def test_get_fresh_links_answers_privately_with_new_links(bot: Bot, song: Path) -> None:
    command = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
    job = await bot.run(command)
    click = p.component_click(
        result_message(bot, command["token"]), f"stemhub:links:{job.id}", user_id=p.OTHER_USER_ID
    )
    bot.dispatch(click)
    await bot.until(lambda: bot.edits(click["token"]))
    (answer,) = answers(bot, click)
    assert answer == {"type": 5, "data": {"flags": 64}}, "deferred first, privately"
    (shown,) = bot.edits(click["token"])
    values = [f["value"] for f in shown["embeds"][0]["fields"]]
    assert sum(f"]({PUBLIC_URL}/files/{job.id}/" in v for v in values) == 2


async def test_split_again_starts_a_new_job_from_the_same_song(bot: Bot, song: Path) -> None:
    command = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
    first = await bot.run(command)
    click = p.component_click(
        result_message(bot, command["token"]), f"stemhub:again:{first.id}", values=["VOCALS"]
    )
    second = await bot.run(click)
    assert second.id != first.id
    assert second.request.stems is StemSet.VOCALS
    assert second.request.source == first.request.source
    assert answers(bot, click)[0] == {"type": 5}
    assert list(second.outputs) == ["vocals"]
    result = bot.fake.find("PATCH", f"/webhooks/{APP_ID}/{click['token']}/messages/@original")[-1]
    assert result.json["embeds"][0]["title"] == "Stems of song.wav"


async def test_fresh_links_for_an_unknown_job_say_it_is_gone(bot: Bot) -> None:
    message = p.channel_message()
    message["components"] = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 2, "custom_id": "stemhub:links:" + "0" * 32, "label": "x"}
            ],
        }
    ]
    click = p.component_click(message, "stemhub:links:" + "0" * 32)
    bot.dispatch(click)
    await bot.until(lambda: bot.edits(click["token"]))
    (shown,) = bot.edits(click["token"])
    assert shown["embeds"][0]["title"] == "This result has expired"
    assert "no longer kept (they are kept for 3 days)" in shown["embeds"][0]["description"]


def guilds_env(**policy: Any) -> dict[str, str]:
    return {"guilds": json.dumps({str(GUILD_ID): policy})}


async def test_only_allowed_channels_may_split(make_bot: BotFactory, song: Path) -> None:
    async with make_bot(env=guilds_env(allowed_channels=[42])) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(payload)
        await bot.settle(calls=3)
        assert await bot.hub.store.list_jobs() == []
    (answer,) = answers(bot, payload)
    assert answer["data"]["flags"] == 64
    embed = answer["data"]["embeds"][0]
    assert embed["title"] == "Splitting is not allowed here"
    assert "<#42>" in embed["description"]
    assert not bot.fake.find("GET", "/cdn/")


async def test_threads_under_an_allowed_channel_may_split(make_bot: BotFactory, song: Path) -> None:
    async with make_bot(env=guilds_env(allowed_channels=[42])) as bot:
        payload = p.split_command(
            file=song_attachment(bot.fake, song), channel_id=4242, thread_of=42
        )
        job = await bot.run(payload)
    assert job.origin.thread_id == "4242"
    assert job.origin.context["parent_channel_id"] == "42"


async def test_allowed_roles_and_server_managers(make_bot: BotFactory, song: Path) -> None:
    async with make_bot(env=guilds_env(allowed_roles=[ROLE_ID])) as bot:
        refused = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(refused)
        await bot.settle(calls=3)
        with_role = await bot.run(
            p.split_command(file=song_attachment(bot.fake, song), roles=[ROLE_ID])
        )
        manager = await bot.run(
            p.split_command(file=song_attachment(bot.fake, song), permissions=p.MANAGE_GUILD)
        )
    assert f"<@&{ROLE_ID}>" in answers(bot, refused)[0]["data"]["embeds"][0]["description"]
    assert with_role.origin.context["roles"] == [str(ROLE_ID)]
    assert manager.origin.context["manage_guild"] is True


async def test_a_quota_refusal_says_when_to_try_again(make_bot: BotFactory, song: Path) -> None:
    quota = QuotaSettings(per_user="1/hour", per_channel=None, per_guild=None, per_api_key=None)
    async with make_bot(quota=quota) as bot:
        await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
        second = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(second)
        await bot.until(lambda: bot.fake.find("POST", f"/webhooks/{APP_ID}/{second['token']}"))
    assert answers(bot, second) == [{"type": 5}], "public defer, as for any split"
    assert bot.fake.find("DELETE", f"/{second['token']}/messages/@original")
    (said,) = bot.fake.of_interaction(second["token"])[-1:]
    assert said.private_to == p.USER_ID, "the refusal is private"
    assert not bot.edits(second["token"]), "nothing public was shown"
    embed = said.body["embeds"][0]
    assert embed["footer"]["text"] == ErrorCode.QUOTA_EXCEEDED.value
    assert "1 splits allowed per hour" in embed["description"]
    assert "You can try again <t:" in embed["description"]


async def test_the_queue_command_is_for_server_managers(bot: Bot, song: Path) -> None:
    await bot.run(p.split_command(file=song_attachment(bot.fake, song)))
    # another server's split: none of its figures show here
    await bot.run(
        p.split_command(
            file=song_attachment(bot.fake, song),
            user_id=p.OTHER_USER_ID,
            guild_id=OTHER_GUILD_ID,
            channel_id=OTHER_CHANNEL_ID,
        )
    )
    member = p.queue_command()
    bot.dispatch(member)
    manager = p.queue_command(permissions=p.MANAGE_GUILD)
    bot.dispatch(manager)
    await bot.until(lambda: bot.edits(manager["token"]) and answers(bot, member))
    refused = answers(bot, member)[0]["data"]
    assert refused["flags"] == 64
    assert refused["embeds"][0]["title"] == "Splitting is not allowed here"
    assert answers(bot, manager) == [{"type": 5, "data": {"flags": 64}}]
    embed = bot.edits(manager["token"])[0]["embeds"][0]
    assert embed["title"] == "stemhub queue"
    usage = next(f["value"] for f in embed["fields"] if f["name"] == "Usage")
    assert "1 splits in the last 24 hours" in usage
    assert f"<@{p.USER_ID}>: 1" in usage
    assert str(p.OTHER_USER_ID) not in usage


class BrokenBackendPlugin:
    @hookimpl
    def stemhub_register_backends(self, register: Any) -> None:
        def broken(_hub: Any) -> Any:
            raise RuntimeError("boom: secret internals")

        register("broken", broken)


async def test_an_unexpected_error_shows_a_reference_not_a_traceback(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(
        default_backend="broken", extra_plugins=(("broken", BrokenBackendPlugin()),)
    ) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song))
        bot.dispatch(payload)
        await bot.settle(calls=3)
    (answer,) = answers(bot, payload)
    embed = answer["data"]["embeds"][0]
    assert embed["title"] == "Something went wrong on our side"
    assert "Reference: `" in embed["description"]
    assert "boom" not in json.dumps(answer)
    assert "Traceback" not in json.dumps(answer)
