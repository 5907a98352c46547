"""A round-robin reverse proxy on loopback, for hubs behind a load balancer.

:class:`Balancer` sends request *n* to ``backends[n % len(backends)]``, with nothing
sticky (no session affinity, no cookie pinning), the way a plain L7 load
balancer spreads requests over interchangeable instances. It forwards the method, the
path with its query string, the headers and the body unchanged, so a Slack signature
(an HMAC of ``X-Slack-Request-Timestamp`` and the raw body,
https://api.slack.com/authentication/verifying-requests-from-slack) still verifies at
whichever backend takes the request. Only hop-by-hop headers are left to each connection,
as every proxy must (RFC 9110 section 7.6.1); ``Content-Length`` is sent again with the
same value. Answers go back as the backend gave them: status, headers (every
``Set-Cookie``), body, redirects not followed, content not decoded.

Every request is recorded in :attr:`Balancer.routed` with the backend that took it, so
a test can prove that the steps of a flow really landed on different instances.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that describe one connection, not the message (RFC 9110 section 7.6.1)."""
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Routed:
    """One request as the balancer passed it on, and what the backend answered."""

    backend: int
    method: str
    path: str
    """The path with its query string, as the client sent it."""
    headers: dict[str, str]
    """The request's headers, names lower-cased."""
    body: bytes
    status: int


class Balancer:
    """Round-robin over ``backends`` (base URLs); more can be appended while it runs."""

    def __init__(self, backends: list[str] | None = None) -> None:
        self.backends: list[str] = list(backends or [])
        self.routed: list[Routed] = []
        self.url = ""
        self._turns = itertools.count()
        self._session: aiohttp.ClientSession | None = None

    def taken_by(self, wanted: Callable[[Routed], bool]) -> list[int]:
        """The backend of each recorded request that ``wanted`` picks, in arrival order."""
        return [routed.backend for routed in self.routed if wanted(routed)]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Balancer]:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=60)
        )
        try:
            await web.SockSite(runner, sock).start()
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            yield self
        finally:
            await runner.cleanup()
            await self._session.close()
            sock.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if not self.backends or self._session is None:
            return web.Response(status=503, text="no backend")
        backend = next(self._turns) % len(self.backends)
        body = await request.read()
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
        )
        try:
            async with self._session.request(
                request.method,
                self.backends[backend] + request.raw_path,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                status = answer.status
                returned = CIMultiDict(
                    (name, value)
                    for name, value in answer.headers.items()
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
                )
        except (aiohttp.ClientError, TimeoutError):
            content, status, returned = b"backend unreachable", 502, CIMultiDict()
        self.routed.append(
            Routed(
                backend=backend,
                method=request.method,
                path=request.raw_path,
                headers={name.lower(): value for name, value in request.headers.items()},
                body=body,
                status=status,
            )
        )
        return web.Response(status=status, body=content, headers=returned)


__all__ = ["HOP_BY_HOP", "Balancer", "Routed"]
