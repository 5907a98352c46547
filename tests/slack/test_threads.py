"""Results go in the thread people look at: a reply's thread is its parent's.

Slack takes a ``thread_ts`` that is no thread's parent and shows the reply nowhere (the
simulator keeps such messages in ``misthreaded``); the app must name the parent.
"""

from __future__ import annotations

from tests.fakes.slack import event_callback, message_shortcut, slack_file
from tests.slack.conftest import SlackWorld


async def test_the_shortcut_on_a_reply_answers_in_its_parents_thread(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    await slack_world.open_hub()
    parent = api.user_message("C0MUSIC", text="demos for the EP")
    file = slack_file("F0REPLY", "take 3.wav", slack_world.files.file_url("F0REPLY", "take 3.wav"))
    reply = api.user_message("C0MUSIC", thread_ts=parent.ts, files=[file])
    body = message_shortcut(
        files=[file],
        response_url=api.response_url("shortcut"),
        message_ts=reply.ts,
        thread_ts=parent.ts,
    )

    await slack_world.post(body)
    job = await slack_world.delivered()

    assert job.delivered_at is not None
    assert job.delivery["status"]["thread_ts"] == parent.ts
    in_thread = api.thread("C0MUSIC", parent.ts)
    assert any(m.files for m in in_thread) and any(m.blocks for m in in_thread)
    assert api.misthreaded == []


async def test_a_file_shared_in_a_dm_thread_gets_its_stems_in_that_thread(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    await slack_world.open_hub()
    parent = api.user_message("D0ALICE", user="U0ALICE", text="here's the song")
    shared = slack_world.shared_in_dm("F0THREAD", reply_to=parent.ts)

    await slack_world.post(event_callback(shared, event_id="Ev0THREAD"))
    job = await slack_world.delivered()

    assert job.delivered_at is not None
    [complete] = api.calls_to("files.completeUploadExternal", ok=True)
    assert complete.args["thread_ts"] == parent.ts
    assert api.misthreaded == []
