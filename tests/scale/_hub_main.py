"""A hub process for the tests: submits one job per path argument, then runs until killed.

Settings come from ``STEMHUB_*`` variables; ``TEST_HUB_LEASE_S`` sets its job leases.
Prints ``{"job": "<id>"}`` per submitted job on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from stemhub.config import Settings
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import FakeBackendControls, FakeBackendPlugin
from tests.scale._cluster import file_request


async def main(paths: list[str]) -> None:
    controls = FakeBackendControls()
    pm = get_plugin_manager(only=(), extra=[("fake", FakeBackendPlugin(controls))])
    lease_s = float(os.environ.get("TEST_HUB_LEASE_S", "30"))
    async with Hub(Settings(_env_file=None), pm=pm, lease_s=lease_s) as hub:
        for path in paths:
            job = await hub.submit(file_request(Path(path)))
            print(json.dumps({"job": job.id}), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
