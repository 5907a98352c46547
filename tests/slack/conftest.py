"""A Slack world on loopback: the mock Web API, private file hosts, and hubs serving /slack/events.

Settings reach the plugin the way an operator gives them (environment variables), so the
tests also cover the configuration path; nothing reads a real ``.env`` or stemhub.toml.
"""

from __future__ import annotations

import asyncio
import json
import re
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

from stemhub.config import Settings
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import Job
from stemhub.testing import FakeBackendControls, free_port, make_settings, open_test_hub
from tests.fakes.slack import (
    TEST_BOT_TOKEN,
    FileHost,
    MockSlack,
    signed,
    slack_file,
    slash_command,
)

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIME_SCALE = 10.0


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
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(f"{url or self.url}/slack/events", content=body, headers=sent)

    async def command(self, text: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("trigger_id", self.api.trigger_id())
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

    def shared_in_dm(self, file_id: str, *, reply_to: str | None = None) -> dict[str, Any]:
        """Alice sends the app a file in their DM (as a reply in the thread ``reply_to``):
        the ``file_shared`` event Slack sends, which names only the file (the app looks it
        up with files.info, whose ``shares`` say where it was posted)."""
        message = self.api.user_message(
            "D0ALICE",
            user="U0ALICE",
            ts=None if reply_to else "1700000000.000200",
            thread_ts=reply_to,
        )
        share: dict[str, str] = {"ts": message.ts}
        if reply_to:
            share["thread_ts"] = reply_to
        url = self.files.file_url(file_id, "a.wav")
        self.api.files[file_id] = {
            **slack_file(file_id, "a.wav", url),
            "ims": ["D0ALICE"],
            "shares": {"private": {"D0ALICE": [share]}},
        }
        return {
            "type": "file_shared",
            "channel_id": "D0ALICE",
            "file_id": file_id,
            "user_id": "U0ALICE",
            "file": {"id": file_id},
            "event_ts": message.ts,
        }

    async def install(self, client: httpx.AsyncClient, team: str) -> httpx.Response:
        """Install the app in ``team`` the way a browser does: /slack/install, approve,
        /slack/oauth_redirect with Slack's code and the state cookie."""
        page = await client.get(f"{self.url}/slack/install")
        assert page.status_code == 200, page.text
        state = re.search(r"state=([A-Za-z0-9_\-]+)", page.text)
        assert state is not None, page.text
        code = self.api.oauth_code(team)
        # the state cookie is Secure: a browser sends it back over the https of a deployment
        cookie = page.headers["set-cookie"].split(";")[0]
        return await client.get(
            f"{self.url}/slack/oauth_redirect",
            params={"code": code, "state": state.group(1)},
            headers={"Cookie": cookie},
        )

    async def split_from(self, hub: Hub, team: str, user: str) -> Job:
        """``/split <link> vocals`` by ``user`` of ``team``; the job once it was delivered.

        Its response_url is ``f"{team}-{user}"``."""
        body = slash_command(
            self.elsewhere.url + "/cdn/demo.wav vocals",
            response_url=self.api.response_url(f"{team}-{user}"),
            trigger_id=self.api.trigger_id(),
            user=user,
        ).replace("T0STEMHUB", team)
        assert (await self.post(body)).status_code == 200
        for _ in range(1000):
            jobs = await hub.list_jobs(user_id=user)
            if jobs:
                return await hub.wait_for(jobs[0].id, timeout=15)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no job from {team}")


async def build_world(
    stack: AsyncExitStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audio: bytes
) -> SlackWorld:
    """The simulator, two file hosts and the settings of a Slack world (no hub yet).

    Time runs ten times faster than Slack's for rate limits (the simulator's windows and
    the plugin's pace both), so a test waits 0.1 s where Slack would make it wait 1 s.
    """
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    api = await stack.enter_async_context(MockSlack(rate_scale=TIME_SCALE).running())
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
        channel_interval_s=str(1.0 / TIME_SCALE),
    )
    return world


@pytest_asyncio.fixture
async def slack_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stemhub_audio_file: Path
) -> AsyncIterator[SlackWorld]:
    async with AsyncExitStack() as stack:
        world = await build_world(stack, tmp_path, monkeypatch, stemhub_audio_file.read_bytes())
        try:
            yield world
        finally:
            for hub in list(world.hubs):
                await hub.close()
        # every reply went in a thread people can open (a thread_ts that is no parent is lost)
        assert [(m.channel, m.thread_ts) for m in world.api.misthreaded] == []
