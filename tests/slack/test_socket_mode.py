"""Socket Mode: acks go back over the WebSocket, and hubs sharing a store handle an event once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import parse_qsl

from stemhub.models import JobStatus
from tests.fakes.slack import (
    MockSocketMode,
    event_callback,
    slash_command,
    socket_envelope,
)
from tests.slack.conftest import SlackWorld


async def test_socket_mode_acks_over_the_socket_and_dedupes_across_hubs(
    slack_world: SlackWorld,
) -> None:
    socket = await slack_world.stack.enter_async_context(MockSocketMode().running())
    slack_world.api.socket_url = socket.url
    slack_world.configure(mode="socket", app_token="xapp-1-A0STEMHUB-1-test")
    first = await slack_world.open_hub(serve=False)
    second = await slack_world.open_hub(serve=False)
    runs = [asyncio.create_task(slack_world.frontend(hub).run()) for hub in (first, second)]
    try:
        await socket.wait_for_connections(2)
        command = dict(
            parse_qsl(
                slash_command(
                    slack_world.elsewhere.url + "/cdn/demo.wav vocals",
                    response_url=slack_world.api.response_url("cmd"),
                )
            )
        )
        await socket.send(socket_envelope("slash_commands", command, envelope_id="env-cmd"), to=0)
        ack = (await socket.wait_for_acks(1))[0]
        assert ack["envelope_id"] == "env-cmd"
        job = await slack_world.only_job(first)
        job = await first.wait_for(job.id, timeout=15)
        assert job.status is JobStatus.COMPLETED

        shared = slack_world.shared_in_dm("F0SOCK")
        event = json.loads(event_callback(shared, event_id="Ev0S"))
        await socket.send(socket_envelope("events_api", event, envelope_id="env-ev-1"), to=0)
        await socket.send(
            socket_envelope("events_api", event, envelope_id="env-ev-2", retry_attempt=1), to=1
        )
        await socket.wait_for_acks(3)
        await slack_world.api.wait_for("files.completeUploadExternal", 2)
        await asyncio.sleep(0.3)

        assert len(slack_world.api.calls_to("files.info")) == 1
        assert len(await first.store.list_jobs()) == 2
        assert len(slack_world.files.requests) == 1
        assert {a["envelope_id"] for a in socket.acks} == {"env-cmd", "env-ev-1", "env-ev-2"}
    finally:
        for run in runs:
            run.cancel()
        for run in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await run
