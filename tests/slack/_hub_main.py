"""A hub process with the Slack frontend in HTTP mode, for tests/slack/test_load_balanced.py.

``argv[1]`` is a JSON object of hub settings (``data_dir``, ``database_url``,
``public_url``, ``signing_key``, …) on top of the tests' defaults
(:func:`stemhub.testing.make_settings`); the Slack settings come from ``STEMHUB_SLACK_*``
in the environment, as an operator gives them. The hub's HTTP app is served on a free
loopback port; ``{"url": ...}`` is printed on stdout once it answers. SIGTERM closes the
server and the hub. Jobs run on the fake backend, in this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import stemhub_slack.plugin

from stemhub.http import HubServer
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub


async def main(overrides: dict[str, Any]) -> None:
    data_dir = Path(overrides.pop("data_dir"))
    settings = make_settings(data_dir, **overrides)
    hub = open_test_hub(settings, FakeBackendControls(), frontends=["slack"])
    hub.pm.register(stemhub_slack.plugin, name="slack")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with hub, HubServer(hub, port=0).running() as server:
        print(json.dumps({"url": server.url}), flush=True)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("stemhub_slack").setLevel(logging.INFO)
    asyncio.run(main(json.loads(sys.argv[1])))
