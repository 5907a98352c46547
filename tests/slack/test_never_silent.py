"""A delivery Slack refuses for good still ends with the person told, and a final status line."""

from __future__ import annotations

from stemhub.models import JobStatus
from tests.fakes.slack import BOT_SCOPES
from tests.slack.conftest import SlackWorld


def _final(world: SlackWorld, status: dict[str, str]) -> str:
    message = world.api.message(status["channel"], status["ts"])
    assert message is not None
    return message.text


async def test_a_missing_scope_tells_the_person_with_links_and_ends_the_status_line(
    slack_world: SlackWorld,
) -> None:
    slack_world.api.set_scopes(BOT_SCOPES - {"files:write"})
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    job = await slack_world.delivered()

    assert job.status is JobStatus.COMPLETED
    assert job.delivery["notified"] is True
    assert "sent again" not in job.delivery["error"]["message"]
    [(key, told)] = [r for r in slack_world.api.responses if "ready" in r[1]["text"]]
    assert key == "cmd" and told["response_type"] == "ephemeral"
    assert "blocks" not in told  # plain text, nothing Slack could refuse again
    assert f"/files/{job.id}/" in told["text"]
    final = _final(slack_world, job.delivery["status"])
    assert "separating" not in final and "queued" not in final
    assert "download links" in final


async def test_a_revoked_token_still_reaches_the_person_through_the_response_url(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    slack_world.api.hold("files.getUploadURLExternal")

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    await slack_world.api.wait_for("files.getUploadURLExternal")
    slack_world.api.revoke()
    slack_world.api.release("files.getUploadURLExternal")
    job = await slack_world.delivered()

    assert job.delivery["notified"] is True
    assert any("ready" in payload["text"] for _key, payload in slack_world.api.responses)


async def test_a_channel_the_app_is_not_in_gets_the_word_and_the_stems_go_to_the_dm(
    slack_world: SlackWorld,
) -> None:
    slack_world.api.add_channel("C0PUBLIC", bot_member=False)
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav both", channel="C0PUBLIC")
    job = await slack_world.delivered()

    api = slack_world.api
    status = job.delivery["status"]
    assert status["channel"] == "C0PUBLIC"  # chat:write.public: the status line is there
    [dm_files] = [m for m in api.channel_messages("D0ALICE") if m.files]
    assert len(dm_files.files) == 2 and "can't upload" in dm_files.text
    [summary] = [m for m in api.thread("C0PUBLIC", status["ts"]) if m.blocks]
    assert "not a member of this channel" in summary.text or "not a member" in str(summary.blocks)
    assert "/invite @stemhub" in str(summary.blocks)
    assert "done" in _final(slack_world, status)
    assert job.delivery["upload"]["moved_to_dm"] is True
