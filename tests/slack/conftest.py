"""A Slack world on loopback: the mock Web API, private file hosts, and hubs serving /slack/events.

Settings reach the plugin the way an operator gives them (environment variables), so the
tests also cover the configuration path; nothing reads a real ``.env`` or stemhub.toml.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import stemhub_slack.plugin
from stemhub_slack.frontend import SlackFrontend
from stemhub_slack.testing import (
    TEST_BOT_TOKEN,
    FileHost,
    MockSlack,
    signed,
    slash_command,
)

from stemhub.config import Settings
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import Job
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SlackWorld:
    api: MockSlack
    files: FileHost
    elsewhere: FileHost
    controls: FakeBackendControls
    settings: Settings
    audio: bytes
    monkeypatch: pytest.MonkeyPatch
    stack: AsyncExitStack
    hubs: list[Hub] = field(default_factory=list)
    url: str = ""

    def configure(self, **env: Any) -> None:
        """Set ``STEMHUB_SLACK_<NAME>`` for hubs opened after this call."""
        for name, value in env.items():
            text = value if isinstance(value, str) else json.dumps(value)
            self.monkeypatch.setenv(f"STEMHUB_SLACK_{name.upper()}", text)

    async def open_hub(self, *, serve: bool = True, **overrides: Any) -> Hub:
        """A hub with the Slack frontend on this world's data dir (a restart opens another)."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        hub = open_test_hub(settings, self.controls, frontends=["slack"])
        hub.pm.register(stemhub_slack.plugin, name="slack")
        await hub.open()
        self.hubs.append(hub)
        if serve:
            server = HubServer(hub, port=settings.http_port)
            await server.start()
            self.stack.push_async_callback(server.stop)
            self.url = server.url
        return hub

    async def close_hub(self, hub: Hub) -> None:
        await hub.close()
        if hub in self.hubs:
            self.hubs.remove(hub)

    def frontend(self, hub: Hub | None = None) -> SlackFrontend:
        frontend = (hub or self.hubs[-1]).frontends["slack"]
        assert isinstance(frontend, SlackFrontend)
        return frontend

    async def post(
        self, body: str, *, headers: dict[str, str] | None = None, url: str | None = None
    ) -> httpx.Response:
        """POST a body to /slack/events, signed as Slack signs it (unless headers are given)."""
        sent = headers if headers is not None else signed(body, SIGNING_SECRET)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(f"{url or self.url}/slack/events", content=body, headers=sent)

    async def command(self, text: str, **kwargs: Any) -> httpx.Response:
        body = slash_command(text, response_url=self.api.response_url("cmd"), **kwargs)
        return await self.post(body)

    async def only_job(self, hub: Hub | None = None, within_s: float = 10.0) -> Job:
        """The one job the hub holds (waits for it to be submitted)."""
        target = hub or self.hubs[-1]
        deadline = time.monotonic() + within_s
        while True:
            jobs = await target.store.list_jobs(limit=10)
            if jobs:
                assert len(jobs) == 1, [j.id for j in jobs]
                return jobs[0]
            if time.monotonic() > deadline:
                raise AssertionError("no job was submitted")
            await asyncio.sleep(0.01)

    async def delivered(self, hub: Hub | None = None) -> Job:
        target = hub or self.hubs[-1]
        job = await self.only_job(target)
        return await target.wait_for(job.id, timeout=15)


@pytest_asyncio.fixture
async def slack_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stemhub_audio_file: Path
) -> AsyncIterator[SlackWorld]:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    audio = stemhub_audio_file.read_bytes()
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(MockSlack().running())
        elsewhere = await stack.enter_async_context(
            FileHost(token=TEST_BOT_TOKEN, audio=audio).running()
        )
        files = await stack.enter_async_context(
            FileHost(token=TEST_BOT_TOKEN, audio=audio, elsewhere=elsewhere.url).running()
        )
        port = free_port()
        settings = make_settings(
            tmp_path / "data",
            default_backend="fake",
            allow_private_networks=True,
            http_port=port,
            public_url=f"http://127.0.0.1:{port}",
        )
        world = SlackWorld(
            api=api,
            files=files,
            elsewhere=elsewhere,
            controls=FakeBackendControls(),
            settings=settings,
            audio=audio,
            monkeypatch=monkeypatch,
            stack=stack,
        )
        world.configure(
            bot_token=TEST_BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            mode="http",
            api_url=api.api_url,
            file_hosts=[files.host],
            progress_interval_s="0",
        )
        try:
            yield world
        finally:
            for hub in list(world.hubs):
                await hub.close()
