"""Installing in many workspaces: Slack's OAuth v2 flow, each team served with its own token."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from stemhub_slack.installations import INSTALLATIONS_NS
from stemhub_slack.messages import FRESH_LINKS_ACTION

from tests.fakes.slack import CLIENT_ID, CLIENT_SECRET, block_action, event_callback
from tests.slack.conftest import SlackWorld

# slack_sdk sends the client credentials of oauth.v2.access with aiohttp's BasicAuth
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")


async def test_two_workspaces_install_and_each_is_served_with_its_own_token(
    slack_world: SlackWorld,
) -> None:
    slack_world.configure(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    hub = await slack_world.open_hub()
    api = slack_world.api

    async with httpx.AsyncClient(timeout=10) as client:
        first = await slack_world.install(client, "T0FIRST")
        second = await slack_world.install(client, "T0SECOND")
    assert (first.status_code, second.status_code) == (200, 200)
    stored = json.dumps(await hub.kv(INSTALLATIONS_NS).items())
    assert "xoxb-" not in stored  # tokens are sealed
    assert "T0FIRST" in stored and "T0SECOND" in stored

    one = await slack_world.split_from(hub, "T0FIRST", "U0ALICE")
    two = await slack_world.split_from(hub, "T0SECOND", "U0BOB")

    for job, team in ((one, "T0FIRST"), (two, "T0SECOND")):
        assert job.delivered_at is not None and "error" not in job.delivery
        status_ts = job.delivery["status"]["ts"]
        edits = [c for c in api.calls_to("chat.update") if c.args.get("ts") == status_ts]
        assert edits and {c.team_id for c in edits} == {team}
        upload = api.calls_to("files.completeUploadExternal", ok=True)
        assert any(c.team_id == team and c.args.get("thread_ts") == status_ts for c in upload)
    tokens = {c.team_id: c.token for c in api.calls if c.team_id in ("T0FIRST", "T0SECOND")}
    assert tokens["T0FIRST"] != tokens["T0SECOND"]


async def test_a_request_from_one_team_cannot_reach_another_teams_job(
    slack_world: SlackWorld,
) -> None:
    slack_world.configure(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, upload_stems="false")
    hub = await slack_world.open_hub()
    async with httpx.AsyncClient(timeout=10) as client:
        await slack_world.install(client, "T0FIRST")
        await slack_world.install(client, "T0SECOND")
    theirs = await slack_world.split_from(hub, "T0SECOND", "U0BOB")

    click = block_action(
        action_id=FRESH_LINKS_ACTION,
        value=theirs.id,
        response_url=slack_world.api.response_url("nosy"),
    ).replace("T0STEMHUB", "T0FIRST")
    await slack_world.post(click)
    await slack_world.api.wait_for_responses(1)

    told = dict(slack_world.api.responses)["nosy"]["text"]
    assert "no longer have that job" in told
    assert f"/files/{theirs.id}/" not in told


async def test_an_uninstalled_workspace_is_forgotten(slack_world: SlackWorld) -> None:
    slack_world.configure(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    hub = await slack_world.open_hub()
    async with httpx.AsyncClient(timeout=10) as client:
        await slack_world.install(client, "T0SECOND")
    uninstalled = json.loads(
        event_callback({"type": "app_uninstalled"}, event_id="Ev0GONE").replace(
            "T0STEMHUB", "T0SECOND"
        )
    )

    await slack_world.post(json.dumps(uninstalled))
    for _ in range(500):
        if not await hub.kv(INSTALLATIONS_NS).items():
            break
        await asyncio.sleep(0.01)

    assert await hub.kv(INSTALLATIONS_NS).items() == []
