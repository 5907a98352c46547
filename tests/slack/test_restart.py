"""A hub restarted mid-job or mid-delivery finishes the job in Slack exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

from stemhub.models import JobStatus, Stage
from tests.slack.conftest import SlackWorld


async def _wait_for_stage(world: SlackWorld, stage: Stage) -> None:
    for _ in range(1000):
        job = await world.only_job()
        if job.stage is stage:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the job never reached {stage}")


async def test_restart_mid_separation_edits_the_same_message_and_delivers_once(
    slack_world: SlackWorld,
) -> None:
    slack_world.controls.delay_s = 30
    slack_world.controls.progress_steps = 300
    first = await slack_world.open_hub()
    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav")
    await slack_world.api.wait_for("chat.postMessage")
    await _wait_for_stage(slack_world, Stage.SEPARATE)
    await slack_world.api.wait_for("chat.update")
    await slack_world.close_hub(first)

    slack_world.controls.delay_s = 0.2
    second = await slack_world.open_hub(serve=False)
    job = await slack_world.delivered(second)

    api = slack_world.api
    assert job.status is JobStatus.COMPLETED
    posts = api.calls_to("chat.postMessage", ok=True)
    assert len(posts) == 2  # the status message (before the restart) and the summary
    status_ts = job.delivery["status"]["ts"]
    assert {c.args["ts"] for c in api.calls_to("chat.update")} == {status_ts}
    assert "done" in api.calls_to("chat.update")[-1].args["text"]
    assert len(api.calls_to("files.completeUploadExternal")) == 1


async def test_restart_mid_upload_uploads_only_the_missing_stems(slack_world: SlackWorld) -> None:
    slack_world.api.hold("files.getUploadURLExternal", after=2)
    first = await slack_world.open_hub()
    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav")
    await slack_world.api.wait_for("files.getUploadURLExternal", 3)
    await asyncio.sleep(0.1)
    await slack_world.close_hub(first)
    slack_world.api.release("files.getUploadURLExternal")

    second = await slack_world.open_hub(serve=False)
    job = await slack_world.delivered(second)

    api = slack_world.api
    asked = Counter(c.args["filename"] for c in api.calls_to("files.getUploadURLExternal"))
    first_two = [c.args["filename"] for c in api.calls_to("files.getUploadURLExternal")[:2]]
    assert all(asked[name] == 1 for name in first_two)  # recorded uploads are not repeated
    assert sorted(asked) == [f"demo - {s}.mp3" for s in ("bass", "drums", "other", "vocals")]
    [complete] = api.calls_to("files.completeUploadExternal", ok=True)
    assert len(complete.args["files"].split('"id"')) == 5  # all four stems, one message
    assert len(api.calls_to("chat.postMessage", ok=True)) == 2
    assert {c.error for c in api.calls_to("chat.postMessage", ok=False)} <= {"ratelimited"}
    assert sorted(job.delivery["uploaded"]) == ["bass", "drums", "other", "vocals"]
    assert job.delivered_at is not None
