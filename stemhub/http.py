"""The hub's one ASGI app (Starlette, served by uvicorn).

The core serves signed stem downloads, ``/healthz`` and ``/readyz``; plugins add their
routes (Slack's HTTP mode, the n8n bridge, backend webhook receivers) through
``stemhub_register_routes``. Errors leave as the StemSplit envelope
``{"error": {"code", "message"}}`` so every client sees one shape.

The server is on the internet's side of the hub, so it bounds what one client may hold
(:class:`ServerLimits`): a request's headers must arrive within ``header_timeout_s``
of its first byte (uvicorn itself has no such deadline: a client sending half a request
held its connection forever), its body within ``body_timeout_s`` with no pause longer
than ``body_idle_s``; headers are capped at ``max_header_bytes`` and the server takes at
most ``max_connections`` connections at once (503 beyond). Idle keep-alive connections
close after ``keep_alive_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from stemhub.errors import ErrorCode, StemhubError
from stemhub.outputs import FILES_PREFIX

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """What one HTTP client may hold of the hub's server (see the module docstring)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 600.0
    body_idle_s: float = 30.0
    keep_alive_s: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1000


class RequestTimeout(StemhubError):
    """408: the client stopped sending its request body."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message)

    @property
    def http_status(self) -> int:
        return 408


class BodyDeadline:
    """ASGI middleware: a request body must arrive in time, or ``receive`` raises 408.

    Applies to the body only (``http.request`` messages until ``more_body`` is false);
    later ``receive`` calls (a handler waiting for ``http.disconnect``) pass through.
    """

    def __init__(self, app: ASGIApp, *, total_s: float, idle_s: float) -> None:
        self.app = app
        self.total_s = total_s
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_s
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            wait = min(self.idle_s, deadline - loop.time())
            try:
                if wait <= 0:
                    raise TimeoutError
                async with asyncio.timeout(wait):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    "The request body did not arrive in time; send it again."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers.

    The clock starts when the connection opens or when the first byte of the next
    request arrives, and stops when the request's headers are complete; a client that
    has not sent them by then is disconnected.
    """

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._awaiting_headers():
            self._arm()
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        cycle = self.cycle
        return cycle is None or cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


def _protocol(limits: ServerLimits) -> type[asyncio.Protocol]:
    return type("HubH11Protocol", (_HeaderDeadline,), {"header_timeout_s": limits.header_timeout_s})


def error_response(error: StemhubError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    extra = dict(headers or {})
    if error.retry_after is not None:
        extra.setdefault("Retry-After", str(max(1, round(error.retry_after))))
    return JSONResponse({"error": error.to_dict()}, status_code=error.http_status, headers=extra)


async def _stemhub_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StemhubError)
    return error_response(exc)


async def _http_error_handler(_request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the same envelope as every other error."""
    assert isinstance(exc, HTTPException)
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.INVALID_REQUEST}.get(
        exc.status_code, ErrorCode.INVALID_REQUEST
    )
    body = {"error": {"code": code.value, "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def plugin_routes(hub: Hub) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    hub.pm.hook.stemhub_register_routes(register=routes.append, hub=hub)
    return routes


def build_app(
    hub: Hub,
    *,
    extra_routes: list[BaseRoute] | None = None,
    limits: ServerLimits = ServerLimits(),
) -> Starlette:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            await hub.store.count_jobs()
        except Exception as exc:  # noqa: BLE001 - readiness reports any store failure
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "store": "down"}, status_code=503)
        return JSONResponse(
            {"status": "ready", "store": hub.store.dialect, "runningJobs": hub.running_jobs}
        )

    async def download(request: Request) -> Response:
        params = request.query_params
        path = hub.outputs.verify(
            request.path_params["job_id"],
            request.path_params["filename"],
            params.get("exp", ""),
            params.get("sig", ""),
        )
        return FileResponse(path, filename=path.name)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route(FILES_PREFIX + "/{job_id}/{filename}", download, methods=["GET", "HEAD"]),
    ]
    routes += plugin_routes(hub)
    routes += extra_routes or []
    handlers = {StemhubError: _stemhub_error_handler, HTTPException: _http_error_handler}
    deadline = Middleware(BodyDeadline, total_s=limits.body_timeout_s, idle_s=limits.body_idle_s)
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=[deadline])
    app.state.hub = hub
    return app


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for a server to listen on (port 0: the kernel picks one).

    Made with ``IPPROTO_TCP`` spelled out: asyncio turns Nagle's algorithm off on an
    accepted connection only when its socket says TCP (``proto == IPPROTO_TCP``), and a
    plain ``socket.socket(AF_INET)`` says 0. With Nagle on, a response written as headers
    then body waited for the client's delayed ACK: about 40 ms per request on a
    keep-alive connection, whatever the handler cost.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits = ServerLimits()
) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn inside this event loop; yields its base URL.

    Port 0 picks a free port. On exit the server finishes in-flight requests for up to
    five seconds, then stops. Tests and benches use this for loopback fakes.
    """
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        ws="none",
        http=_protocol(limits),
        timeout_keep_alive=max(1, round(limits.keep_alive_s)),
        h11_max_incomplete_event_size=limits.max_header_bytes,
        limit_concurrency=limits.max_connections,
    )
    server = uvicorn.Server(config)
    sock = tcp_listener(host, port)
    bound_port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=5)
        except TimeoutError:
            server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            pass
        sock.close()


class HubServer:
    """The hub's app served by uvicorn inside the hub's event loop."""

    def __init__(
        self,
        hub: Hub,
        *,
        host: str | None = None,
        port: int | None = None,
        limits: ServerLimits = ServerLimits(),
    ) -> None:
        self.hub = hub
        self.limits = limits
        self.host = host or hub.settings.http_host
        self.port = hub.settings.http_port if port is None else port
        self.url = ""
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        self.url = await self._stack.enter_async_context(
            serve_asgi(
                build_app(self.hub, limits=self.limits),
                host=self.host,
                port=self.port,
                limits=self.limits,
            )
        )
        self.port = int(self.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        await self._stack.aclose()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HubServer]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


__all__ = [
    "BodyDeadline",
    "HubServer",
    "RequestTimeout",
    "ServerLimits",
    "build_app",
    "error_response",
    "plugin_routes",
    "serve_asgi",
    "tcp_listener",
]
