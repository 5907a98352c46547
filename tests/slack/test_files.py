"""Slack-hosted files: the shortcut and DM uploads, the bearer token, and event dedupe."""

from __future__ import annotations

import asyncio

from stemhub.models import JobStatus
from tests.fakes.slack import (
    BOT_USER_ID,
    TEST_BOT_TOKEN,
    dm_file_message,
    event_callback,
    message_shortcut,
    signed,
    slack_file,
)
from tests.slack.conftest import SIGNING_SECRET, SlackWorld

BEARER = f"Bearer {TEST_BOT_TOKEN}"


def _auth_headers(world: SlackWorld, host: str) -> list[str | None]:
    source = world.files if host == "files" else world.elsewhere
    return [headers.get("authorization") for _path, headers in source.requests]


async def test_shortcut_downloads_the_file_with_the_bot_token_and_replies_in_its_thread(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    slack_world.api.user_message("C0MUSIC", ts="1699999999.000100")  # the message
    url = slack_world.files.file_url("F0SONG", "demo.wav")
    body = message_shortcut(
        files=[slack_file("F0SONG", "demo.wav", url)],
        response_url=slack_world.api.response_url("shortcut"),
        message_ts="1699999999.000100",
    )

    response = await slack_world.post(body)
    job = await slack_world.delivered()

    assert response.status_code == 200
    assert job.status is JobStatus.COMPLETED
    assert job.request.source.url == url
    assert _auth_headers(slack_world, "files") == [BEARER]
    status_post = slack_world.api.calls_to("chat.postMessage")[0]
    assert status_post.args["thread_ts"] == "1699999999.000100"
    completes = slack_world.api.calls_to("files.completeUploadExternal")
    assert {c.args["thread_ts"] for c in completes} == {"1699999999.000100"}
    # the token is not kept with the job
    stored = (await slack_world.hubs[0].store.get_job(job.id)).model_dump_json()  # type: ignore[union-attr]
    assert TEST_BOT_TOKEN not in stored
    assert "respond/shortcut" not in stored  # the response_url is sealed


async def test_bearer_token_is_not_sent_across_a_redirect_to_another_host(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    slack_world.api.user_message("C0MUSIC", ts="1699999999.000100")  # the message
    url = slack_world.files.file_url("F0MOVED", "demo.wav", moved=True)
    body = message_shortcut(
        files=[slack_file("F0MOVED", "demo.wav", url)],
        response_url=slack_world.api.response_url("shortcut"),
    )

    await slack_world.post(body)
    job = await slack_world.delivered()

    assert job.status is JobStatus.COMPLETED
    assert _auth_headers(slack_world, "files") == [BEARER]
    assert _auth_headers(slack_world, "elsewhere") == [None]


async def test_a_link_typed_by_a_person_never_gets_the_token(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav")
    job = await slack_world.delivered()

    assert job.status is JobStatus.COMPLETED
    assert _auth_headers(slack_world, "elsewhere") == [None]


async def test_sign_in_page_instead_of_audio_asks_for_files_read(slack_world: SlackWorld) -> None:
    slack_world.configure(bot_token="xoxb-token-without-files-read")
    slack_world.api.token = "xoxb-token-without-files-read"
    await slack_world.open_hub()
    slack_world.api.user_message("C0MUSIC", ts="1699999999.000100")  # the message
    url = slack_world.files.file_url("F0SONG", "demo.wav")
    body = message_shortcut(
        files=[slack_file("F0SONG", "demo.wav", url)],
        response_url=slack_world.api.response_url("shortcut"),
    )

    await slack_world.post(body)
    job = await slack_world.delivered()

    assert job.status is JobStatus.FAILED
    assert job.error_code == "UNSUPPORTED_FORMAT"
    told = [payload["text"] for _key, payload in slack_world.api.responses]
    assert any("files:read" in text for text in told), told
    assert all(payload["response_type"] == "ephemeral" for _k, payload in slack_world.api.responses)


async def test_shortcut_on_a_message_without_audio_says_so(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = message_shortcut(
        files=[slack_file("F0DOC", "notes.pdf", "https://x/notes.pdf", mimetype="application/pdf")],
        response_url=slack_world.api.response_url("shortcut"),
    )

    assert (await slack_world.post(body)).status_code == 200
    await slack_world.api.wait_for_responses(1)

    assert "no audio file" in slack_world.api.responses[0][1]["text"]
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_audio_sent_in_a_dm_is_split_in_its_thread(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    url = slack_world.files.file_url("F0DM", "voice memo.wav")
    slack_world.api.user_message("D0ALICE", user="U0ALICE", ts="1700000000.000200")
    event = dm_file_message([slack_file("F0DM", "voice memo.wav", url)], ts="1700000000.000200")

    response = await slack_world.post(event_callback(event, event_id="Ev0DM1"))
    job = await slack_world.delivered()

    assert response.status_code == 200
    assert job.status is JobStatus.COMPLETED
    assert job.origin.channel_id == "D0ALICE"
    assert _auth_headers(slack_world, "files") == [BEARER]
    completes = slack_world.api.calls_to("files.completeUploadExternal")
    assert {c.args["channel_id"] for c in completes} == {"D0ALICE"}
    assert {c.args["thread_ts"] for c in completes} == {"1700000000.000200"}


async def test_a_retried_event_is_processed_once(slack_world: SlackWorld) -> None:
    slack_world.controls.delay_s = 0.3
    await slack_world.open_hub()
    body = event_callback(slack_world.shared_in_dm("F0RETRY"), event_id="Ev0RETRY")

    first = await slack_world.post(body)
    retry_headers = {**signed(body, SIGNING_SECRET), "X-Slack-Retry-Num": "1"}
    retry_headers["X-Slack-Retry-Reason"] = "http_timeout"
    retried = await slack_world.post(body, headers=retry_headers)
    await slack_world.delivered()
    await asyncio.sleep(0.2)

    assert first.status_code == retried.status_code == 200
    assert len(slack_world.api.calls_to("files.info")) == 1  # the retry was not looked at
    assert len(await slack_world.hubs[0].store.list_jobs()) == 1
    assert len(slack_world.files.requests) == 1


async def test_two_hub_instances_handle_one_event_once(slack_world: SlackWorld) -> None:
    first_hub = await slack_world.open_hub()
    first_url = slack_world.url
    second_hub = await slack_world.open_hub(http_port=0)
    body = event_callback(slack_world.shared_in_dm("F0TWICE"), event_id="Ev0TWICE")

    answers = await asyncio.gather(
        slack_world.post(body, url=first_url), slack_world.post(body, url=slack_world.url)
    )
    job = await slack_world.only_job(first_hub)
    await second_hub.wait_for(job.id, timeout=15)

    assert [a.status_code for a in answers] == [200, 200]
    assert len(slack_world.api.calls_to("files.info")) == 1
    assert len(await first_hub.store.list_jobs()) == 1
    assert len(slack_world.api.calls_to("files.completeUploadExternal")) == 1


async def test_file_shared_and_message_events_of_one_file_make_one_job(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    shared = slack_world.shared_in_dm("F0BOTH")
    file = slack_file("F0BOTH", "a.wav", slack_world.files.file_url("F0BOTH", "a.wav"))

    await slack_world.post(event_callback(dm_file_message([file]), event_id="Ev0MSG"))
    await slack_world.post(event_callback(shared, event_id="Ev0SHARED"))
    await slack_world.delivered()
    await asyncio.sleep(0.2)

    assert len(await slack_world.hubs[0].store.list_jobs()) == 1


async def test_plain_dm_messages_are_acked_and_ignored(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    text = {
        "type": "message",
        "channel": "D0ALICE",
        "channel_type": "im",
        "user": "U0ALICE",
        "text": "hi",
        "ts": "1700000000.000400",
        "event_ts": "1700000000.000400",
    }

    response = await slack_world.post(event_callback(text, event_id="Ev0TEXT"))

    assert response.status_code == 200
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_a_file_over_the_size_limit_is_refused_before_download(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub(max_upload_bytes=5_000_000)
    url = slack_world.files.file_url("F0BIG", "long mix.wav")
    body = message_shortcut(
        files=[slack_file("F0BIG", "long mix.wav", url, size=80_000_000)],
        response_url=slack_world.api.response_url("shortcut"),
    )

    await slack_world.post(body)
    await slack_world.api.wait_for_responses(1)

    text = slack_world.api.responses[0][1]["text"]
    assert "76.3 MiB" in text and "MP3" in text
    assert slack_world.files.requests == []
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_files_the_app_itself_posts_in_a_dm_are_not_split(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    url = slack_world.files.file_url("F0STEM", "demo - vocals.mp3")
    event = dm_file_message([slack_file("F0STEM", "demo - vocals.mp3", url)], user=BOT_USER_ID)
    event["bot_id"] = "B0STEMBOT"

    response = await slack_world.post(event_callback(event, event_id="Ev0SELF"))
    await asyncio.sleep(0.2)

    assert response.status_code == 200
    assert await slack_world.hubs[0].store.list_jobs() == []
