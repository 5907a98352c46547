"""The hub's one ASGI app (Starlette, served by uvicorn).

The core serves signed stem downloads, ``/healthz`` and ``/readyz``; plugins add their
routes (Slack's HTTP mode, the n8n bridge, backend webhook receivers) through
``stemhub_register_routes``. Errors leave as the StemSplit envelope
``{"error": {"code", "message"}}`` so every client sees one shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stemhub.errors import ErrorCode, StemhubError
from stemhub.outputs import FILES_PREFIX

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)


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


def build_app(hub: Hub, *, extra_routes: list[BaseRoute] | None = None) -> Starlette:
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
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.hub = hub
    return app


class HubServer:
    """uvicorn running the hub's app inside the hub's event loop."""

    def __init__(self, hub: Hub, *, host: str | None = None, port: int | None = None) -> None:
        self.hub = hub
        self.host = host or hub.settings.http_host
        self.port = hub.settings.http_port if port is None else port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = build_app(self.hub)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HubServer]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


__all__ = ["HubServer", "build_app", "error_response", "plugin_routes"]
