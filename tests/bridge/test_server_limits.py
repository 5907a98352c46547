"""The hub's HTTP server bounds what one client may hold: half-sent headers and bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stemhub_n8n_bridge.frontend import BridgeFrontend

from stemhub.http import HubServer, ServerLimits
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings, patience

SHORT = ServerLimits(header_timeout_s=0.3, body_idle_s=0.3, body_timeout_s=5)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[HubServer]:
    settings = make_settings(tmp_path / "hub")
    hub = Hub(settings, pm=get_plugin_manager(only=("n8n_bridge",)), frontends=["n8n_bridge"])
    await hub.open()
    running = HubServer(hub, port=0, limits=SHORT)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        await hub.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(patience(30)):
        return await reader.read()


async def test_a_client_that_never_finishes_its_headers_is_disconnected(
    server: HubServer,
) -> None:
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
    for n, (_reader, writer) in enumerate(connections):
        if n % 2:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: ")
            await writer.drain()
    answers = [await _read_all(reader) for reader, _writer in connections]
    assert answers == [b""] * 5, "closed without an answer"
    for _reader, writer in connections:
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
    assert (await _read_all(reader)).startswith(b"HTTP/1.1 200"), "prompt clients still served"
    writer.close()


async def test_a_body_that_stops_arriving_gets_408(server: HubServer) -> None:
    bridge = server.hub.frontends["n8n_bridge"]
    assert isinstance(bridge, BridgeFrontend)
    token = (await bridge.keys.create("slow")).token
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /api/v1/upload HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b'Content-Length: 1000\r\n\r\n{"file'
    )
    await writer.drain()
    answer = await _read_all(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"INVALID_REQUEST"' in answer
