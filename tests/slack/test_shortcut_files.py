"""The shortcut on messages with Slack Connect stubs, or with several audio files."""

from __future__ import annotations

import json

from stemhub_slack.messages import PICK_FILE_ACTION

from stemhub.models import JobStatus
from tests.fakes.slack import block_action, connect_stub, message_shortcut, slack_file
from tests.slack.conftest import SlackWorld


async def test_a_slack_connect_stub_is_looked_up_with_files_info(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    slack_world.api.user_message("C0MUSIC", ts="1699999999.000100")  # the message
    url = slack_world.files.file_url("F0EXT", "their demo.wav")
    slack_world.api.files["F0EXT"] = slack_file("F0EXT", "their demo.wav", url)
    body = message_shortcut(
        files=[connect_stub("F0EXT")], response_url=slack_world.api.response_url("shortcut")
    )

    await slack_world.post(body)
    job = await slack_world.delivered()

    assert job.status is JobStatus.COMPLETED
    assert [c.args["file"] for c in slack_world.api.calls_to("files.info")] == ["F0EXT"]
    assert job.request.source.url == url


async def test_several_audio_files_ask_which_one_then_split_the_chosen(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    api = slack_world.api
    api.user_message("C0MUSIC", ts="1699999999.000100")  # the message with the files
    first = slack_file("F0ONE", "take 1.wav", slack_world.files.file_url("F0ONE", "take 1.wav"))
    second = slack_file("F0TWO", "take 2.wav", slack_world.files.file_url("F0TWO", "take 2.wav"))
    api.files["F0TWO"] = second
    body = message_shortcut(
        files=[first, second],
        response_url=api.response_url("shortcut"),
        message_ts="1699999999.000100",
    )

    await slack_world.post(body)
    await api.wait_for_responses(1)
    _key, choice = api.responses[0]
    buttons = [e for b in choice["blocks"] for e in b.get("elements", [])]
    assert [b["text"]["text"] for b in buttons] == ["take 1.wav", "take 2.wav"]
    assert await slack_world.hubs[0].store.list_jobs() == []

    click = block_action(
        action_id=buttons[1]["action_id"],
        value=buttons[1]["value"],
        response_url=api.response_url("pick"),
    )
    await slack_world.post(click)
    job = await slack_world.delivered()

    assert buttons[1]["action_id"].startswith(PICK_FILE_ACTION)
    assert json.loads(buttons[1]["value"])["file"] == "F0TWO"
    assert job.request.source.url == second["url_private_download"]
    assert job.delivery["status"]["thread_ts"] == "1699999999.000100"
