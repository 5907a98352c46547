"""/split: status message, coalesced progress edits, stems uploaded into the thread."""

from __future__ import annotations

import json

from stemhub_slack.messages import ANOTHER_SET_ACTION, FRESH_LINKS_ACTION, MODAL_CALLBACK_ID

from stemhub.models import JobStatus, StemSet
from tests.fakes.slack import TEST_BOT_TOKEN, view_submission
from tests.slack.conftest import SlackWorld


async def test_split_uploads_stems_into_the_thread_of_the_status_message(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    url = slack_world.elsewhere.url + "/cdn/demo.wav"

    assert (await slack_world.command(f"<{url}> 4 mp3")).status_code == 200
    job = await slack_world.delivered()

    api = slack_world.api
    assert job.status is JobStatus.COMPLETED
    assert job.request.stems is StemSet.FOUR_STEMS
    status_post = api.calls_to("chat.postMessage")[0]
    assert status_post.args["channel"] == "C0MUSIC"
    assert "thread_ts" not in status_post.args or not status_post.args["thread_ts"]
    assert "demo.wav" in status_post.args["text"]
    status_ts = job.delivery["status"]["ts"]
    # one upload URL per stem, then ONE completion: all stems in one message of the thread
    assert len(api.calls_to("files.getUploadURLExternal")) == 4
    [complete] = api.calls_to("files.completeUploadExternal")
    assert complete.args["channel_id"] == "C0MUSIC"
    assert complete.args["thread_ts"] == status_ts
    [files_message] = [m for m in api.thread("C0MUSIC", status_ts) if m.files]
    assert len(files_message.files) == 4
    names = sorted(call.args["filename"] for call in api.calls_to("files.getUploadURLExternal"))
    assert names == [f"demo - {stem}.mp3" for stem in ("bass", "drums", "other", "vocals")]
    assert all(body == slack_world.audio for body in api.uploads.values())
    assert sorted(job.delivery["uploaded"]) == ["bass", "drums", "other", "vocals"]
    # the summary in the thread: BPM, key and the buttons
    summary = api.calls_to("chat.postMessage")[-1]
    assert summary.args["thread_ts"] == status_ts
    assert "120 BPM" in summary.args["text"] and "A minor" in summary.args["text"]
    actions = [e["action_id"] for b in summary.args["blocks"] for e in b.get("elements", [])]
    assert ANOTHER_SET_ACTION in actions
    assert FRESH_LINKS_ACTION not in actions  # everything was uploaded
    # the status message ends as "done"
    final = api.calls_to("chat.update")[-1]
    assert final.args["ts"] == status_ts
    assert "done" in final.args["text"]
    assert all(call.token == TEST_BOT_TOKEN for call in api.calls)


async def test_progress_edits_one_message_and_coalesces(slack_world: SlackWorld) -> None:
    slack_world.configure(progress_interval_s="0.4")
    slack_world.controls.delay_s = 1.2
    slack_world.controls.progress_steps = 40
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav")
    job = await slack_world.delivered()

    updates = slack_world.api.calls_to("chat.update")
    status_ts = job.delivery["status"]["ts"]
    assert {call.args["ts"] for call in updates} == {status_ts}
    progress = [c for c in updates if "separating" in c.args["text"]]
    assert 1 <= len(progress) <= 6  # 40 progress reports, at most one edit per 0.4 s
    assert "done" in updates[-1].args["text"]


async def test_bad_arguments_are_answered_in_the_ack(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()

    response = await slack_world.command("not-a-link vocals")
    wrong_stems = await slack_world.command("https://example.com/a.mp3 kazoo")

    assert response.status_code == 200
    assert "link" in response.text
    assert "kazoo" in wrong_stems.text
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_a_typed_slack_file_link_points_to_the_shortcut(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()

    response = await slack_world.command(slack_world.files.file_url("F1", "a.wav"))

    assert "Split stems" in response.text
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_split_without_arguments_opens_the_modal_and_its_submission_splits(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()

    assert (await slack_world.command("")).status_code == 200
    opened = (await slack_world.api.wait_for("views.open"))[0]
    view = opened.args["view"]
    song = slack_world.elsewhere.url + "/cdn/x.wav"
    assert view["callback_id"] == MODAL_CALLBACK_ID
    assert opened.error is None
    values = {
        "link": {"url": {"type": "url_text_input", "value": song}},
        "stems": {
            "stem_set": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "v"}, "value": "BOTH"},
            }
        },
    }
    body = view_submission(
        callback_id=MODAL_CALLBACK_ID, private_metadata=view["private_metadata"], values=values
    )

    response = await slack_world.post(body)
    job = await slack_world.delivered()

    assert response.status_code == 200
    assert job.request.stems is StemSet.BOTH
    assert job.origin.channel_id == "C0MUSIC"
    assert sorted(job.outputs) == ["instrumental", "vocals"]


async def test_modal_with_a_bad_link_shows_the_error_on_the_field(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    values = {"link": {"url": {"type": "url_text_input", "value": "ftp://nope"}}}
    body = view_submission(
        callback_id=MODAL_CALLBACK_ID,
        private_metadata=json.dumps({"channel": "C0MUSIC"}),
        values=values,
    )

    response = await slack_world.post(body)

    assert response.json()["response_action"] == "errors"
    assert "link" in response.json()["errors"]
