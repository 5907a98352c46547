"""Every job in a channel shares one pace: one message write per interval, Retry-After honoured."""

from __future__ import annotations

import asyncio
import itertools

from stemhub.models import JobStatus
from tests.slack.conftest import SlackWorld

WRITES = ("chat.postMessage", "chat.update")


async def test_jobs_in_one_channel_share_one_write_per_interval(slack_world: SlackWorld) -> None:
    slack_world.api.rate_scale = 5.0  # Slack's limits, five times faster
    slack_world.configure(channel_interval_s="0.2", upload_stems="false", progress_interval_s="0")
    slack_world.controls.delay_s = 0.5
    slack_world.controls.progress_steps = 20
    hub = await slack_world.open_hub()
    link = slack_world.elsewhere.url + "/cdn/demo.wav vocals"

    await asyncio.gather(*(slack_world.command(link, user=f"U0USER{n}") for n in range(6)))
    for _ in range(1000):
        if len(jobs := await hub.store.list_jobs()) == 6:
            break
        await asyncio.sleep(0.01)
    done = [await hub.wait_for(job.id, timeout=60) for job in jobs]

    api = slack_world.api
    assert all(job.status is JobStatus.COMPLETED for job in done)
    writes = sorted(
        call.at
        for method in WRITES
        for call in api.calls_to(method, ok=True)
        if call.args.get("channel") == "C0MUSIC"
    )
    gaps = [later - earlier for earlier, later in itertools.pairwise(writes)]
    assert len(writes) >= 18  # a status, a summary and a last word per job
    assert min(gaps) >= 0.15, gaps
    assert api.calls_to("chat.postMessage", ok=False) == []  # never ran into Slack's limit


async def test_a_429_is_waited_out_and_the_message_lands_once(slack_world: SlackWorld) -> None:
    await slack_world.open_hub()
    slack_world.api.fail("chat.postMessage", "ratelimited")

    await slack_world.command(slack_world.elsewhere.url + "/cdn/demo.wav vocals")
    job = await slack_world.delivered()

    api = slack_world.api
    [refused] = api.calls_to("chat.postMessage", ok=False)
    first_ok = api.calls_to("chat.postMessage", ok=True)[0]
    assert first_ok.at - refused.at >= 0.9  # Retry-After: 1
    texts = [m for m in api.channel_messages("C0MUSIC") if not m.files]
    assert len(texts) == 2  # the status message and the summary, each once
    assert job.delivery["status"]["ts"] == texts[0].ts
