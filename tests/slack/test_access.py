"""Who may split where: allowed channels cover DMs, group lookups, Fresh links, the modal."""

from __future__ import annotations

import asyncio

from stemhub_slack.messages import FRESH_LINKS_ACTION

from tests.fakes.slack import block_action, dm_file_message, event_callback, slack_file
from tests.slack.conftest import SlackWorld


async def test_allowed_channels_apply_to_dms(slack_world: SlackWorld) -> None:
    slack_world.configure(allowed_channels=["C0STUDIO"])
    await slack_world.open_hub()
    url = slack_world.files.file_url("F0DM", "memo.wav")
    event = dm_file_message([slack_file("F0DM", "memo.wav", url)])

    await slack_world.post(event_callback(event, event_id="Ev0DMREFUSED"))
    await slack_world.api.wait_for("chat.postMessage")

    [told] = slack_world.api.channel_messages("D0ALICE")
    assert "<#C0STUDIO>" in told.text
    assert await slack_world.hubs[0].store.list_jobs() == []
    assert slack_world.files.requests == []


async def test_a_failed_group_lookup_is_remembered(slack_world: SlackWorld) -> None:
    slack_world.configure(allowed_user_groups=["@producers"])
    slack_world.api.fail("usergroups.list", "missing_scope")
    await slack_world.open_hub()
    link = slack_world.elsewhere.url + "/cdn/demo.wav"

    await slack_world.command(link)
    await slack_world.api.wait_for_responses(1)
    await slack_world.command(link, user="U0BOB")
    await slack_world.api.wait_for_responses(2)

    assert len(slack_world.api.calls_to("usergroups.list")) == 1
    assert all("try again in a minute" in p["text"] for _k, p in slack_world.api.responses)


async def test_fresh_links_checks_who_clicks(slack_world: SlackWorld) -> None:
    slack_world.configure(upload_stems="false", allowed_user_groups=["producers"])
    slack_world.api.usergroups = [
        {"id": "S0PROD", "team_id": "T0STEMHUB", "handle": "producers", "users": ["U0ALICE"]}
    ]
    await slack_world.open_hub()
    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    job = await slack_world.delivered()

    click = block_action(
        action_id=FRESH_LINKS_ACTION,
        value=job.id,
        user="U0BOB",
        response_url=slack_world.api.response_url("bob"),
    )
    await slack_world.post(click)
    await slack_world.api.wait_for_responses(1)

    [(key, told)] = slack_world.api.responses
    assert key == "bob"
    assert "@producers" in told["text"]
    assert f"/files/{job.id}/" not in told["text"]


async def test_an_expired_trigger_says_what_to_type(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    trigger = slack_world.api.trigger_id()
    slack_world.api.clock.advance(5)

    await slack_world.command("", trigger_id=trigger)
    await slack_world.api.wait_for_responses(1)
    await asyncio.sleep(0)

    assert slack_world.api.calls_to("views.open")[0].error == "expired_trigger_id"
    assert "/split <link" in slack_world.api.responses[0][1]["text"]
