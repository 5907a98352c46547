"""Stem choices follow the backend: offered in /split and "Split again", refused in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stemhub import StemSet
from stemhub.testing import FakeBackendControls
from tests.discord import _payloads as p
from tests.discord.conftest import BotFactory
from tests.discord.test_buttons_and_policy import answers, result_message
from tests.discord.test_split import song_attachment
from tests.fakes.discord import APP_ID

TWO_STEMS = frozenset({StemSet.BOTH, StemSet.VOCALS, StemSet.INSTRUMENTAL})


def two_stems_backend() -> FakeBackendControls:
    return FakeBackendControls(stem_sets=TWO_STEMS)


def offered_stems(call_json: list[dict[str, Any]]) -> list[str]:
    (split,) = [command for command in call_json if command["name"] == "split"]
    (stems,) = [option for option in split["options"] if option["name"] == "stems"]
    return [choice["value"] for choice in stems["choices"]]


def again_values(message: dict[str, Any]) -> list[str] | None:
    """The values of the result's "Split again as ..." select, None without one."""
    for row in message["components"]:
        for component in row["components"]:
            if str(component.get("custom_id", "")).startswith("stemhub:again:"):
                return [option["value"] for option in component["options"]]
    return None


async def test_split_offers_only_the_stems_the_backend_can_do(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    data = tmp_path / "shared"
    async with make_bot(data_dir=data) as everything:
        assert await everything.frontend.sync_commands() is True
    async with make_bot(data_dir=data, controls=two_stems_backend()) as narrow:
        assert await narrow.frontend.sync_commands() is True, "another backend: sync again"
    first, second = narrow.fake.find("PUT", f"/applications/{APP_ID}/commands")
    assert offered_stems(first.json)[:3] == ["BOTH", "FOUR_STEMS", "SIX_STEMS"]
    assert "drums" in offered_stems(first.json)
    # one drum stem needs four stems: not offered by a two-stem backend either
    assert offered_stems(second.json) == ["BOTH", "VOCALS", "INSTRUMENTAL"]


async def test_a_choice_the_backend_cannot_do_is_refused_privately_before_any_download(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(controls=two_stems_backend()) as bot:
        payload = p.split_command(file=song_attachment(bot.fake, song), stems="SIX_STEMS")
        bot.dispatch(payload)
        await bot.until(lambda: answers(bot, payload))
        await bot.settle(calls=3)
        assert await bot.hub.list_jobs() == []
    (answer,) = answers(bot, payload)
    assert answer["type"] == 4, "answered at once, never a public 'thinking...'"
    assert answer["data"]["flags"] == 64
    embed = answer["data"]["embeds"][0]
    assert embed["title"] == "These stems are not available here"
    assert embed["description"].startswith(
        "This bot cannot split into 6 stems: + guitar, piano; it can do: Vocals +"
        " instrumental, Vocals only, Instrumental only."
    )
    assert not bot.fake.find("GET", "/cdn/"), "nothing downloaded"


async def test_split_again_offers_only_what_the_backend_can_do(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(controls=two_stems_backend()) as bot:
        command = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
        await bot.run(command)
        message = result_message(bot, command["token"])
    assert again_values(message) == ["VOCALS", "INSTRUMENTAL"]


async def test_a_result_with_nothing_else_to_offer_has_no_split_again_select(
    make_bot: BotFactory, song: Path
) -> None:
    controls = FakeBackendControls(stem_sets=frozenset({StemSet.BOTH}))
    async with make_bot(controls=controls) as bot:
        command = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
        job = await bot.run(command)
        message = result_message(bot, command["token"])
    assert again_values(message) is None, "a select with no option is refused by Discord"
    ids = [c["custom_id"] for row in message["components"] for c in row["components"]]
    assert ids == [f"stemhub:links:{job.id}"]


async def test_an_old_split_again_choice_the_backend_cannot_do_is_refused_in_words(
    make_bot: BotFactory, song: Path
) -> None:
    async with make_bot(controls=two_stems_backend()) as bot:
        command = p.split_command(file=song_attachment(bot.fake, song), stems="BOTH")
        first = await bot.run(command)
        # a result posted while the bot had a four-stem backend still carries the option
        click = p.component_click(
            result_message(bot, command["token"]),
            f"stemhub:again:{first.id}",
            values=["FOUR_STEMS"],
        )
        bot.dispatch(click)
        await bot.until(lambda: answers(bot, click))
        jobs = await bot.hub.list_jobs()
    (answer,) = answers(bot, click)
    assert answer["type"] == 4 and answer["data"]["flags"] == 64
    assert "cannot split into 4 stems" in answer["data"]["embeds"][0]["description"]
    assert [job.id for job in jobs] == [first.id]
