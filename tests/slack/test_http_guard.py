"""HTTP mode: size limit before reading, clean 401s for odd input, replays and other teams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.fakes.slack import signed, slash_command
from tests.slack.conftest import SIGNING_SECRET, SlackWorld


async def test_a_body_over_the_limit_is_refused_unread(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    chunk = b"x" * (256 * 1024)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(400):  # 100 MB, no Content-Length
            yield chunk

    headers = {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=00"}
    async with httpx.AsyncClient(timeout=10) as client:
        declared = await client.post(
            f"{slack_world.url}/slack/events", content=chunk * 8, headers=headers
        )
        streamed = await client.post(
            f"{slack_world.url}/slack/events", content=chunked(), headers=headers
        )

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_odd_unsigned_input_gets_a_plain_401(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = "payload=caf\xe9".encode("latin-1")  # not UTF-8

    not_utf8 = await slack_world.post(
        body.decode("latin-1"),
        headers={
            "X-Slack-Request-Timestamp": "1700000000",
            "X-Slack-Signature": "v0=abc",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    async with httpx.AsyncClient(timeout=10) as client:
        raw = await client.post(
            f"{slack_world.url}/slack/events",
            content=body,
            headers={"X-Slack-Request-Timestamp": "12.5", "X-Slack-Signature": "v0=abc"},
        )

    assert (not_utf8.status_code, raw.status_code) == (401, 401)
    assert "Traceback" not in raw.text


async def test_a_signed_non_utf8_body_is_a_401_not_a_500(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = "payload=caf\xe9"
    headers = signed(body, SIGNING_SECRET, content_type="application/x-www-form-urlencoded")

    async with httpx.AsyncClient(timeout=10) as client:
        # the signature is over the latin-1 bytes the client sends
        answer = await client.post(
            f"{slack_world.url}/slack/events",
            content=body.encode("latin-1"),
            headers={
                **headers,
                **_sign_bytes(body.encode("latin-1"), headers["X-Slack-Request-Timestamp"]),
            },
        )

    assert answer.status_code == 401


def _sign_bytes(raw: bytes, ts: str) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256)
    return {"X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def test_a_replayed_slash_command_makes_one_job(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    body = slash_command(
        slack_world.elsewhere.url + "/cdn/demo.wav vocals",
        response_url=slack_world.api.response_url("cmd"),
        trigger_id=slack_world.api.trigger_id(),
    )
    headers = signed(body, SIGNING_SECRET)

    first = await slack_world.post(body, headers=headers)
    replay = await slack_world.post(body, headers=headers)
    await slack_world.delivered()
    await asyncio.sleep(0.2)

    assert (first.status_code, replay.status_code) == (200, 200)
    assert len(await slack_world.hubs[0].store.list_jobs()) == 1


async def test_a_request_signed_for_another_team_is_not_served_with_our_token(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    body = slash_command(
        slack_world.elsewhere.url + "/cdn/demo.wav",
        response_url=slack_world.api.response_url("other"),
        trigger_id=slack_world.api.trigger_id(),
    ).replace("T0STEMHUB", "T0OTHER")

    answer = await slack_world.post(body)
    await asyncio.sleep(0.3)

    assert answer.status_code == 200
    assert await slack_world.hubs[0].store.list_jobs() == []
    assert slack_world.api.calls_to("chat.postMessage") == []
