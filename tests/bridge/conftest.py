"""A hub with the n8n bridge on a real loopback server, an API key, and a webhook receiver.

The hub runs the fake backend (it copies the input to every stem) and allows fetching
from 127.0.0.1 only, so receivers and source servers on loopback are reachable while
every other private address stays refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from stemhub_n8n_bridge.frontend import BridgeFrontend
from stemhub_n8n_bridge.keys import IssuedKey

from stemhub.http import HubServer, serve_asgi
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import FakeBackendControls, FakeBackendPlugin, free_port, make_settings

serve = serve_asgi


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on loopback that records every post it gets."""

    url: str
    posts: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    """Answer these statuses first, one per post (then 200)."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, within_s: float = 10.0) -> list[Received]:
        async with asyncio.timeout(within_s):
            while len(self.posts) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.posts


@contextlib.asynccontextmanager
async def run_receiver(*, files: dict[str, Path] | None = None) -> AsyncIterator[Receiver]:
    """A receiver at ``/hook/...``; ``files`` are also served at ``/files/<name>``."""
    receiver = Receiver(url="")

    async def hook(request: Request) -> Response:
        receiver.posts.append(
            Received(request.url.path, dict(request.headers), await request.body())
        )
        receiver.arrived.set()
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        return Response(status_code=status)

    async def serve_file(request: Request) -> Response:
        return FileResponse((files or {})[request.path_params["name"]])

    app = Starlette(
        routes=[
            Route("/hook/{rest:path}", hook, methods=["POST"]),
            Route("/files/{name}", serve_file),
        ]
    )
    async with serve(app) as url:
        receiver.url = url
        yield receiver


@dataclass
class BridgeEnv:
    hub: Hub
    url: str
    bridge: BridgeFrontend
    issued: IssuedKey
    controls: FakeBackendControls
    client: httpx.AsyncClient

    @property
    def token(self) -> str:
        return self.issued.token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


FAST_WEBHOOKS = {
    "STEMHUB_N8N_BRIDGE_WEBHOOK_FIRST_RETRY_S": "0.05",
    "STEMHUB_N8N_BRIDGE_OUTBOX_POLL_S": "0.05",
    "STEMHUB_N8N_BRIDGE_KEY_CACHE_S": "0",
}


@contextlib.asynccontextmanager
async def open_bridge(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    public: bool = False,
    **overrides: Any,
) -> AsyncIterator[BridgeEnv]:
    """A hub with the bridge served on loopback; the outbox worker runs.

    The server's port is chosen first so the hub's own URL (``http_url``) is right from
    the start; ``public`` makes it the public URL too, which serves result pages.
    """
    port = free_port()
    if public:
        overrides["public_url"] = f"http://127.0.0.1:{port}"
    settings = make_settings(
        data_dir,
        default_backend="fake",
        allowed_hosts=["127.0.0.1"],
        http_port=port,
        **overrides,
    )
    controls = FakeBackendControls()
    pm = get_plugin_manager(only=("n8n_bridge",), extra=[("fake", FakeBackendPlugin(controls))])
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**FAST_WEBHOOKS, **(env or {})}.items():
            patch.setenv(name, value)
        hub = Hub(settings, pm=pm, frontends=["n8n_bridge"])
        await hub.open()
    server = HubServer(hub, host="127.0.0.1", port=port)
    worker: asyncio.Task[None] | None = None
    try:
        await server.start()
        bridge = hub.frontends["n8n_bridge"]
        assert isinstance(bridge, BridgeFrontend)
        worker = asyncio.create_task(bridge.run())
        issued = await bridge.keys.create("tests")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            yield BridgeEnv(hub, server.url, bridge, issued, controls, client)
    finally:
        if worker is not None:
            bridge = hub.frontends["n8n_bridge"]
            assert isinstance(bridge, BridgeFrontend)
            bridge.outbox.stop()  # between passes: a cancel could land mid-query
            await worker
        await server.stop()
        await hub.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[BridgeEnv]:
    async with open_bridge(tmp_path / "hub") as opened:
        yield opened


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with run_receiver() as running:
        yield running
