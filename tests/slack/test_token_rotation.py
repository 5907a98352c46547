"""Token rotation: a delivery hours after the install refreshes the workspace's token itself.

With token rotation on, Slack's bot tokens expire after 12 hours; slack-bolt refreshes
them only for incoming requests. These jobs are delivered after the token expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
from stemhub_slack.installations import INSTALLATIONS_NS

from stemhub.hub import Hub
from stemhub.models import JobStatus
from tests.fakes.slack import CLIENT_ID, CLIENT_SECRET, TOKEN_TTL_S, message_shortcut
from tests.slack.conftest import SlackWorld

# the install (bolt, through slack_sdk) sends the client credentials with aiohttp's BasicAuth
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

TEAM = "T0FIRST"


async def _installed_with_rotation(world: SlackWorld) -> Hub:
    world.api.token_rotation = True
    world.configure(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    hub = await world.open_hub()
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await world.install(client, TEAM)).status_code == 200
    return hub


async def test_a_delivery_after_the_token_expired_refreshes_it_once_and_succeeds(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    hub = await _installed_with_rotation(slack_world)
    api.hold("files.getUploadURLExternal")

    split = asyncio.create_task(slack_world.split_from(hub, TEAM, "U0ALICE"))
    [held] = await api.wait_for("files.getUploadURLExternal")
    api.clock.advance(TOKEN_TTL_S)  # the job waited in a long queue: 12 hours later
    api.release("files.getUploadURLExternal")
    job = await split

    assert job.delivered_at is not None and "error" not in job.delivery
    assert held.error == "token_expired"
    [grant] = api.refresh_grants()
    assert grant.error is None
    assert grant.args["refresh_token"] not in api.refresh_tokens  # Slack revoked the old one
    later = [c for c in api.calls[api.calls.index(grant) + 1 :] if c.team_id == TEAM]
    assert later and all(c.error is None for c in later)
    assert {c.token for c in later} == {later[0].token} and later[0].token != held.token
    assert later[0].token is not None and later[0].token.startswith("xoxe.xoxb-")
    stored = json.dumps(await hub.kv(INSTALLATIONS_NS).items())
    assert "xoxe" not in stored  # the new token and refresh token are sealed
    frontend = slack_world.frontend(hub)
    assert frontend.installations is not None
    bot = await frontend.installations.async_find_bot(enterprise_id=None, team_id=TEAM)
    assert bot is not None and bot.bot_token == later[0].token
    assert bot.bot_refresh_token in api.refresh_tokens


async def test_a_token_near_its_end_is_refreshed_before_it_is_used(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    api.token_ttl_s = 3600.0  # installed long ago: an hour left, within the 2-hour margin
    hub = await _installed_with_rotation(slack_world)
    api.token_ttl_s = TOKEN_TTL_S

    job = await slack_world.split_from(hub, TEAM, "U0ALICE")

    assert job.delivered_at is not None
    [grant] = api.refresh_grants()
    used = [c for c in api.calls if c.team_id == TEAM]
    assert used and all(c.error is None for c in used)  # never refused as expired
    after = [c for c in used if c.at > grant.at]
    assert api.calls_to("chat.postMessage")[0] in after  # refreshed before the job's calls
    assert {c.token for c in after} == {after[0].token} != {used[0].token}  # the new one


async def test_an_early_refresh_slack_refuses_keeps_the_token_that_still_works(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    api.token_ttl_s = 3600.0
    hub = await _installed_with_rotation(slack_world)
    api.revoke_refresh_tokens(TEAM)

    job = await slack_world.split_from(hub, TEAM, "U0ALICE")

    assert job.delivered_at is not None and "error" not in job.delivery
    assert {c.error for c in api.refresh_grants()} == {"invalid_refresh_token"}
    assert len(api.refresh_grants()) == 1  # a refused refresh is not asked again


async def test_hubs_refreshing_one_installation_at_once_make_one_refresh(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    first = await _installed_with_rotation(slack_world)
    second = await slack_world.open_hub(serve=False)
    tokens = [slack_world.frontend(hub).tokens for hub in (first, first, second, second)]
    stale = await tokens[0].token(TEAM) if tokens[0] is not None else None
    assert stale is not None
    api.clock.advance(TOKEN_TTL_S)
    installs = len(api.calls_to("oauth.v2.access"))
    api.hold("oauth.v2.access", after=installs)  # the first refresh is in flight a while

    refreshing = asyncio.gather(*(t.refreshed(TEAM, stale) for t in tokens if t is not None))
    await api.wait_for("oauth.v2.access", installs + 1)
    with contextlib.suppress(AssertionError):  # a racing hub would ask now
        await api.wait_for("oauth.v2.access", installs + 2, within_s=1.0)
    api.release("oauth.v2.access")
    fresh = await refreshing

    assert len(set(fresh)) == 1 and fresh[0] != stale
    assert len(api.refresh_grants()) == 1  # a second grant would spend a revoked token


async def test_a_refresh_token_slack_no_longer_takes_ends_in_the_plain_text_notice(
    slack_world: SlackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    api = slack_world.api
    hub = await _installed_with_rotation(slack_world)
    api.clock.advance(TOKEN_TTL_S - 60)  # the job comes in a minute before the token expires
    api.revoke_refresh_tokens(TEAM)
    api.hold("files.getUploadURLExternal")

    split = asyncio.create_task(slack_world.split_from(hub, TEAM, "U0ALICE"))
    await api.wait_for("files.getUploadURLExternal")
    api.clock.advance(120)
    api.release("files.getUploadURLExternal")
    job = await split

    assert job.delivered_at is None and job.delivery["notified"] is True
    assert "sent again" not in job.delivery["error"]["message"]  # refused for good
    said = [r.getMessage() for r in caplog.records if r.name == "stemhub_slack.delivery"]
    assert any("invalid_refresh_token" in m and "install the app" in m for m in said)
    assert {c.error for c in api.refresh_grants()} == {"invalid_refresh_token"}
    assert len(api.refresh_grants()) == 1  # refused once: not asked again for each message
    [told] = [p for key, p in api.responses if key == f"{TEAM}-U0ALICE" and "ready" in p["text"]]
    assert f"/files/{job.id}/" in told["text"]


async def test_a_slack_connect_file_is_looked_up_and_downloaded_with_the_refreshed_token(
    slack_world: SlackWorld,
) -> None:
    api = slack_world.api
    hub = await _installed_with_rotation(slack_world)
    slack_world.files.api = api  # the file host takes the tokens Slack takes, no other
    url = slack_world.files.file_url("F0EXT", "their demo.wav")
    stub = api.connect_file("F0EXT", "their demo.wav", url, team_id=TEAM)
    message = api.user_message("C0MUSIC", files=[stub])
    api.clock.advance(TOKEN_TTL_S)  # the next morning

    body = message_shortcut(
        files=[stub], response_url=api.response_url("connect"), message_ts=message.ts
    ).replace("T0STEMHUB", TEAM)
    assert (await slack_world.post(body)).status_code == 200
    job = await slack_world.delivered(hub)

    assert job.status is JobStatus.COMPLETED and job.delivered_at is not None
    [info] = api.calls_to("files.info", ok=True)
    assert info.team_id == TEAM and info.token is not None
    assert info.token.startswith("xoxe.xoxb-") and len(api.refresh_grants()) == 1
    downloads = [headers for path, headers in slack_world.files.requests if "F0EXT" in path]
    assert [h.get("authorization") for h in downloads] == [f"Bearer {info.token}"]
    assert job.request.source.url == url
