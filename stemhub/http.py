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
from typing import TYPE_CHECKING, Any

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


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn inside this event loop; yields its base URL.

    Port 0 picks a free port. On exit the server finishes in-flight requests for up to
    five seconds, then stops. Tests and benches use this for loopback fakes.
    """
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, ws="none")
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
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

    def __init__(self, hub: Hub, *, host: str | None = None, port: int | None = None) -> None:
        self.hub = hub
        self.host = host or hub.settings.http_host
        self.port = hub.settings.http_port if port is None else port
        self.url = ""
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        self.url = await self._stack.enter_async_context(
            serve_asgi(build_app(self.hub), host=self.host, port=self.port)
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


__all__ = ["HubServer", "build_app", "error_response", "plugin_routes", "serve_asgi"]
