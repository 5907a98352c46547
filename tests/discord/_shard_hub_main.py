"""A hub process that runs some of the bot's Discord shards, for test_shard_processes.py.

It does with the Discord frontend what ``stemhub run --plugins discord`` does (open the
hub, then the frontend's ``run()``: login, command sync, the gateway; recovery every
``STEMHUB_RECOVERY_INTERVAL_S``), plus the two things the command cannot do in a test:
separate with the fake backend (a test object, not an installed plugin) and dial the
simulator's gateway (with an explicit shard count discord.py always dials Discord's own,
``DiscordWebSocket.DEFAULT_GATEWAY``; only ``/gateway/bot`` would name another).

Settings come from ``STEMHUB_*`` and ``STEMHUB_DISCORD_*`` (``SHARD_IDS``, ``SHARD_COUNT``);
``TEST_DISCORD_GATEWAY_URL`` is the simulator's gateway and ``TEST_SEPARATION_S`` how long
one fake separation takes here. Prints a JSON line per job event of this process:
``{"event": "created" | "delivered", "job": "<id>", "key": "<idempotency key>"}``.
SIGTERM stops it gracefully; SIGKILL is what the test does to a hub that dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

import discord
import yarl

from stemhub import Job, hookimpl
from stemhub.config import Settings
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import FakeBackendControls, FakeBackendPlugin


class JobEvents:
    """Prints what this process does with each job, for the test to read."""

    def _say(self, event: str, job: Job) -> None:
        line = {"event": event, "job": job.id, "key": job.request.idempotency_key}
        print(json.dumps(line), flush=True)

    @hookimpl
    def stemhub_job_created(self, job: Job) -> None:
        self._say("created", job)

    @hookimpl
    def stemhub_job_delivered(self, job: Job) -> None:
        self._say("delivered", job)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    gateway = yarl.URL(os.environ["TEST_DISCORD_GATEWAY_URL"])
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
    controls = FakeBackendControls(
        delay_s=float(os.environ.get("TEST_SEPARATION_S", "0.2")), progress_steps=20
    )
    pm = get_plugin_manager(
        only=("discord",),
        block=("web",),
        extra=[("fake", FakeBackendPlugin(controls)), ("job-events", JobEvents())],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with Hub(Settings(_env_file=None), pm=pm, frontends=["discord"]) as hub:
        frontend = hub.frontend("discord")
        assert frontend is not None
        running = asyncio.create_task(frontend.run())
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([running, waiter], return_when=asyncio.FIRST_COMPLETED)
        running.cancel()
        waiter.cancel()
        if running in done:
            running.result()  # the gateway stopped by itself: its error ends the process


if __name__ == "__main__":
    asyncio.run(main())
