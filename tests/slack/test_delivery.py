"""Results as links, fresh links, DMs when a channel refuses, and errors said ephemerally."""

from __future__ import annotations

import httpx
from stemhub_slack.messages import (
    ANOTHER_SET_ACTION,
    FRESH_LINKS_ACTION,
    MODAL_CALLBACK_ID,
    RESULT_PAGE_ACTION,
)

from stemhub.config import QuotaSettings
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import JobStatus
from tests.fakes.slack import block_action, view_submission
from tests.slack.conftest import SlackWorld


async def test_without_uploads_the_thread_gets_working_links(slack_world: SlackWorld) -> None:
    slack_world.configure(upload_stems="false")
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav both")
    job = await slack_world.delivered()

    api = slack_world.api
    assert api.calls_to("files.getUploadURLExternal") == []
    summary = api.calls_to("chat.postMessage")[-1]
    assert summary.args["thread_ts"] == job.delivery["status"]["ts"]
    text = summary.args["blocks"][0]["text"]["text"]
    links = [part.split("|")[0] for part in text.split("<")[1:]]
    assert len(links) == 2
    async with httpx.AsyncClient() as client:
        fetched = [await client.get(link) for link in links]
    assert [r.status_code for r in fetched] == [200, 200]
    assert fetched[0].content == slack_world.audio
    actions = [e["action_id"] for b in summary.args["blocks"] for e in b.get("elements", [])]
    assert actions == [RESULT_PAGE_ACTION, FRESH_LINKS_ACTION, ANOTHER_SET_ACTION]
    # the result page and the waveform picture open from the summary
    (page_button,) = [
        e for b in summary.args["blocks"] for e in b.get("elements", []) if "url" in e
    ]
    (picture,) = [b for b in summary.args["blocks"] if b["type"] == "image"]
    async with httpx.AsyncClient() as client:
        page = await client.get(page_button["url"])
        image = await client.get(picture["image_url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


async def test_fresh_links_button_answers_ephemerally(slack_world: SlackWorld) -> None:
    slack_world.configure(upload_stems="false")
    await slack_world.open_hub()
    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    job = await slack_world.delivered()
    click = block_action(
        action_id=FRESH_LINKS_ACTION, value=job.id, response_url=slack_world.api.response_url("btn")
    )

    response = await slack_world.post(click)
    await slack_world.api.wait_for_responses(1)

    assert response.status_code == 200
    key, payload = slack_world.api.responses[-1]
    assert key == "btn"
    assert payload["response_type"] == "ephemeral"
    assert f"/files/{job.id}/" in payload["text"]


async def test_another_stem_set_opens_a_modal_that_splits_the_same_song(
    slack_world: SlackWorld,
) -> None:
    await slack_world.open_hub()
    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    first = await slack_world.delivered()
    thread = first.delivery["status"]["ts"]
    click = block_action(
        action_id=ANOTHER_SET_ACTION,
        value=first.id,
        response_url=slack_world.api.response_url("btn"),
        thread_ts=thread,
        trigger_id=slack_world.api.trigger_id(),
    )

    await slack_world.post(click)
    view = (await slack_world.api.wait_for("views.open"))[0].args["view"]
    values = {
        "stems": {"stem_set": {"type": "static_select", "selected_option": {"value": "FOUR_STEMS"}}}
    }
    await slack_world.post(
        view_submission(
            callback_id=MODAL_CALLBACK_ID,
            private_metadata=view["private_metadata"],
            values=values,
        )
    )
    await slack_world.api.wait_for("files.completeUploadExternal", 2)
    jobs = await slack_world.hubs[0].store.list_jobs()
    second = next(j for j in jobs if j.id != first.id)
    second = await slack_world.hubs[0].wait_for(second.id, timeout=15)

    assert second.status is JobStatus.COMPLETED
    assert second.request.source == first.request.source
    assert sorted(second.outputs) == ["bass", "drums", "other", "vocals"]
    assert second.delivery["status"]["thread_ts"] == thread


async def test_a_channel_without_the_app_gets_the_results_in_a_dm(slack_world: SlackWorld) -> None:
    slack_world.api.fail("chat.postMessage", "not_in_channel")
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    job = await slack_world.delivered()

    api = slack_world.api
    assert job.status is JobStatus.COMPLETED
    assert [c.args["users"] for c in api.calls_to("conversations.open")] == ["U0ALICE"]
    assert job.delivery["status"]["channel"] == "D0ALICE"
    assert api.calls_to("files.completeUploadExternal")[0].args["channel_id"] == "D0ALICE"
    await api.wait_for_responses(1)
    assert "/invite" in api.responses[0][1]["text"]


async def test_a_failed_job_is_explained_to_its_requester_only(slack_world: SlackWorld) -> None:
    slack_world.controls.fail_with = StemhubError(
        ErrorCode.BACKEND_UNAVAILABLE, "The separation service is not answering."
    )
    slack_world.controls.fail_times = 1
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav")
    job = await slack_world.delivered()

    assert job.status is JobStatus.FAILED
    assert job.delivery["told"] is True
    _key, payload = slack_world.api.responses[-1]
    assert payload["response_type"] == "ephemeral"
    assert "not answering" in payload["text"]
    final = slack_world.api.calls_to("chat.update")[-1]
    assert "could not be split" in final.args["text"]
    assert "not answering" not in final.args["text"]


async def test_quota_refusal_is_ephemeral_and_says_when(slack_world: SlackWorld) -> None:
    quota = QuotaSettings(per_user=None, per_channel=None, per_guild="1/hour", per_api_key=None)
    await slack_world.open_hub(quota=quota)
    link = slack_world.elsewhere.url + "/cdn/demo.wav"

    await slack_world.command(link)
    await slack_world.delivered()
    await slack_world.command(link, user="U0BOB")
    await slack_world.api.wait_for_responses(1)

    text = slack_world.api.responses[-1][1]["text"]
    assert "This workspace has used all 1 splits allowed per hour" in text
    assert "Try again in" in text
    assert len(await slack_world.hubs[0].store.list_jobs()) == 1


async def test_channels_outside_the_allowed_list_are_refused(slack_world: SlackWorld) -> None:
    slack_world.configure(allowed_channels=["C0STUDIO"])
    await slack_world.open_hub()

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav", channel="C0RANDOM")
    await slack_world.api.wait_for_responses(1)

    assert "<#C0STUDIO>" in slack_world.api.responses[0][1]["text"]
    assert await slack_world.hubs[0].store.list_jobs() == []


async def test_only_members_of_the_allowed_user_groups_may_split(slack_world: SlackWorld) -> None:
    slack_world.configure(allowed_user_groups=["@producers"])
    slack_world.api.usergroups = [
        {"id": "S0PROD", "team_id": "T0STEMHUB", "handle": "producers", "users": ["U0ALICE"]},
        {"id": "S0OTHER", "team_id": "T0STEMHUB", "handle": "sales", "users": ["U0BOB"]},
    ]
    await slack_world.open_hub()
    link = slack_world.elsewhere.url + "/cdn/demo.wav"

    await slack_world.command(link, user="U0BOB")
    await slack_world.api.wait_for_responses(1)
    await slack_world.command(link, user="U0ALICE")
    job = await slack_world.delivered()

    assert "@producers" in slack_world.api.responses[0][1]["text"]
    assert job.origin.user_id == "U0ALICE"
    assert len(slack_world.api.calls_to("usergroups.list")) == 1


async def test_rate_limited_delivery_is_retried(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    slack_world.api.fail("files.completeUploadExternal", "ratelimited", times=2)

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    job = await slack_world.delivered()

    assert "error" not in job.delivery
    assert job.delivery["uploaded"].keys() == {"vocals"}
