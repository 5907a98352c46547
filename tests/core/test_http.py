"""The hub's HTTP app on a real loopback server: health, signed stem downloads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from stemhub.http import HubServer, serve_asgi
from stemhub.hub import Hub
from stemhub.models import JobRequest, JobStatus, Origin, Source, SourceKind
from stemhub.testing import patience


async def test_health_and_ready(stemhub_hub: Hub) -> None:
    async with HubServer(stemhub_hub, port=0).running() as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url + "/healthz")).json() == {"status": "ok"}
        ready = await client.get(server.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["store"] == "sqlite"
        missing = await client.get(server.url + "/no/such/route")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


async def test_signed_links_download_and_refuse_forgery(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    async with HubServer(stemhub_hub, port=0).running() as server, httpx.AsyncClient() as client:
        stemhub_hub.outputs.public_url = server.url
        job = await stemhub_hub.submit(
            JobRequest(source=Source(kind=SourceKind.FILE, path=str(stemhub_audio_file)))
        )
        done = await stemhub_hub.wait_for(job.id, timeout=patience(10))
        links = stemhub_hub.outputs.output_links(done)
        url, _expires = links["vocals"]
        ok = await client.get(url)
        assert ok.status_code == 200
        assert ok.content == stemhub_audio_file.read_bytes()
        assert 'filename="vocals.wav"' in ok.headers["content-disposition"]

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        forged = await client.get(base, params={"exp": query["exp"][0], "sig": "A" * 43})
        assert forged.status_code == 403
        unicode_sig = await client.get(base, params={"exp": query["exp"][0], "sig": "é" * 43})
        assert unicode_sig.status_code == 403
        assert forged.json()["error"]["code"] == "FORBIDDEN"
        longer = await client.get(
            base, params={"exp": str(int(query["exp"][0]) + 9999), "sig": query["sig"][0]}
        )
        assert longer.status_code == 403
        other_file = base.replace("vocals.wav", "drums.wav")
        swapped = await client.get(other_file, params={k: v[0] for k, v in query.items()})
        assert swapped.status_code == 403

        stale_url, _ = stemhub_hub.outputs.link(job.id, "vocals.wav", ttl_s=1)
        await asyncio.sleep(1.1)
        expired = await client.get(stale_url)
        assert expired.status_code == 410
        assert expired.json()["error"]["code"] == "JOB_EXPIRED"


async def test_cleanup_keeps_stems_of_undelivered_jobs(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    request = JobRequest(source=Source(kind=SourceKind.FILE, path=str(stemhub_audio_file)))
    delivered = await stemhub_hub.wait_for((await stemhub_hub.submit(request)).id, timeout=10)
    elsewhere = request.model_copy(update={"origin": Origin(platform="absent")})
    waiting = await stemhub_hub.submit(elsewhere)
    waiting = await stemhub_hub.wait_for(waiting.id, delivered=False, timeout=patience(10))
    stemhub_hub.settings.retention_hours = 1e-9
    removed = await stemhub_hub.cleanup_outputs()
    assert removed == 1
    assert not stemhub_hub.outputs.job_dir(delivered.id).exists()
    assert stemhub_hub.outputs.job_dir(waiting.id).exists()
    expired = await stemhub_hub.require_job(delivered.id)
    assert expired.status is JobStatus.EXPIRED and expired.error_code == "JOB_EXPIRED"
    assert (await stemhub_hub.require_job(waiting.id)).status is JobStatus.COMPLETED
    # the next pass finds nothing more to do; a retry runs the expired job again
    assert await stemhub_hub.cleanup_outputs() == 0
    again = await stemhub_hub.retry(delivered.id)
    assert again.status is JobStatus.QUEUED


async def test_the_server_sends_each_response_without_waiting_for_an_ack() -> None:
    """Nagle's algorithm is off on the server's connections.

    With it on, a response written as headers then body waited for the client's delayed
    ACK, about 40 ms per request on a keep-alive connection (23 requests/s on one
    connection, whatever the handler cost). Read off the server's own socket for the
    client's connection: the server runs in this process, so it is one of its open files.
    """

    async def ok(_request: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/", ok)])
    async with serve_asgi(app) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n")
            async with asyncio.timeout(patience(10)):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            client = writer.get_extra_info("sockname")
            with _tcp_sockets_of_this_process() as sockets:
                nodelay = [
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                    for sock in sockets
                    if sock.getsockname() == ("127.0.0.1", port) and _peer(sock) == client
                ]
        finally:
            writer.close()
            await writer.wait_closed()
    assert len(nodelay) == 1, "the server's end of the connection"
    assert nodelay[0], "TCP_NODELAY on the server's socket"


@contextlib.contextmanager
def _tcp_sockets_of_this_process() -> Iterator[list[socket.socket]]:
    """Copies of this process's TCP sockets (duplicated descriptors, closed after)."""
    found: list[socket.socket] = []
    try:
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    found.append(socket.socket(fileno=os.dup(int(fd))))
        yield [s for s in found if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM]
    finally:
        for sock in found:
            sock.close()


def _peer(sock: socket.socket) -> object:
    try:
        return sock.getpeername()
    except OSError:
        return None
