"""Requests reach the app only with Slack's signature, and are answered within 3 s."""

from __future__ import annotations

import json
import time

from stemhub.models import JobStatus
from tests.fakes.slack import signed, slash_command
from tests.slack.conftest import SIGNING_SECRET, SlackWorld


async def test_split_command_is_acked_at_once_while_the_job_runs(slack_world: SlackWorld) -> None:
    slack_world.controls.delay_s = 1.5
    await slack_world.open_hub()
    url = slack_world.elsewhere.url + "/cdn/song.wav"

    started = time.monotonic()
    response = await slack_world.command(f"{url} vocals wav")
    acked_after = time.monotonic() - started

    assert response.status_code == 200
    assert acked_after < 1.0
    job = await slack_world.only_job()
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert job.request.origin.platform == "slack"
    assert job.request.origin.user_id == "U0ALICE"
    assert job.request.origin.guild_id == "T0STEMHUB"
    done = await slack_world.delivered()
    assert done.status is JobStatus.COMPLETED


async def test_forged_signature_is_refused(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = slash_command("https://example.com/a.mp3", response_url=slack_world.api.response_url())
    forged = signed(body, "not-the-signing-secret")

    response = await slack_world.post(body, headers=forged)

    assert response.status_code == 401
    assert slack_world.api.calls_to("chat.postMessage") == []
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_stale_signature_is_refused(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = slash_command("https://example.com/a.mp3", response_url=slack_world.api.response_url())
    stale = signed(body, SIGNING_SECRET, timestamp=int(time.time()) - 600)

    response = await slack_world.post(body, headers=stale)

    assert response.status_code == 401
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_unsigned_and_tampered_requests_are_refused(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = slash_command("https://example.com/a.mp3", response_url=slack_world.api.response_url())
    headers = signed(body, SIGNING_SECRET)

    unsigned = await slack_world.post(body, headers={"Content-Type": headers["Content-Type"]})
    tampered = await slack_world.post(body.replace("a.mp3", "b.mp3"), headers=headers)
    garbage_ts = await slack_world.post(body, headers={**headers, "X-Slack-Request-Timestamp": "x"})

    assert [unsigned.status_code, tampered.status_code, garbage_ts.status_code] == [401, 401, 401]


async def test_events_url_verification_answers_the_challenge(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = json.dumps(
        {
            "token": "t",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )

    response = await slack_world.post(body)

    assert response.status_code == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in response.text
