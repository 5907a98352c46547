"""A small Starlette app that misbehaves on request, for the download tests.

Every request is recorded (path, headers) so a test can see what reached the server:
nothing at all for a refused address, no ``Authorization`` after a cross-host redirect.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

CHUNK = 64 * 1024


@dataclass
class Seen:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class Recorder:
    """What reached one server; the server runs in its own thread, hence threading.Event."""

    requests: list[Seen] = field(default_factory=list)
    streamed_bytes: int = 0
    stream_closed: threading.Event = field(default_factory=threading.Event)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def reset(self) -> None:
        self.requests.clear()
        self.streamed_bytes = 0
        self.stream_closed.clear()


def payload(size: int) -> bytes:
    """Deterministic bytes that are not all alike, so a short or shuffled copy shows."""
    return random.Random(size).randbytes(size)


def make_app(recorder: Recorder) -> Starlette:
    async def record(request: Request) -> None:
        recorder.requests.append(
            Seen(request.url.path, request.url.query, dict(request.headers.items()))
        )

    async def audio(request: Request) -> Response:
        await record(request)
        size = int(request.query_params.get("size", "100000"))
        headers = {}
        if "disposition" in request.query_params:
            headers["content-disposition"] = request.query_params["disposition"]
        return Response(payload(size), media_type="audio/mpeg", headers=headers)

    async def endless(request: Request) -> Response:
        await record(request)

        async def body() -> AsyncIterator[bytes]:
            block = payload(CHUNK)
            try:
                while True:
                    recorder.streamed_bytes += len(block)
                    yield block
                    await asyncio.sleep(0)
            finally:
                recorder.stream_closed.set()

        headers = {}
        if "declare" in request.query_params:
            headers["content-length"] = request.query_params["declare"]
        return StreamingResponse(body(), media_type="audio/wav", headers=headers)

    async def redirect(request: Request) -> Response:
        await record(request)
        left = int(request.path_params["left"])
        target = "/audio/song.mp3" if left <= 0 else f"/redirect/{left - 1}"
        return RedirectResponse(target, status_code=302)

    async def to(request: Request) -> Response:
        await record(request)
        status = int(request.query_params.get("status", "302"))
        return RedirectResponse(request.query_params["url"], status_code=status)

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        headers = {}
        if "retry_after" in request.query_params:
            headers["retry-after"] = request.query_params["retry_after"]
        return PlainTextResponse("no", status_code=code, headers=headers)

    async def stall(request: Request) -> Response:
        await record(request)
        await asyncio.sleep(30)
        return PlainTextResponse("late")

    async def stall_body(request: Request) -> Response:
        await record(request)

        async def body() -> AsyncIterator[bytes]:
            yield payload(1000)
            await asyncio.sleep(30)
            yield payload(1000)

        return StreamingResponse(body(), media_type="audio/mpeg")

    async def trickle(request: Request) -> Response:
        await record(request)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(1000):
                yield b"x"
                await asyncio.sleep(0.05)

        return StreamingResponse(body(), media_type="audio/mpeg")

    async def empty(request: Request) -> Response:
        await record(request)
        return Response(b"", media_type="audio/mpeg")

    async def echo(request: Request) -> Response:
        await record(request)
        return PlainTextResponse(request.headers.get("authorization", "-"))

    async def hook(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("ok " + (await request.body()).decode())

    return Starlette(
        routes=[
            Route("/audio/{name:path}", audio),
            Route("/endless", endless),
            Route("/redirect/{left}", redirect),
            Route("/to", to),
            Route("/status/{code}", status),
            Route("/stall", stall),
            Route("/stall-body", stall_body),
            Route("/trickle", trickle),
            Route("/empty", empty),
            Route("/echo", echo),
            Route("/hook", hook, methods=["POST"]),
        ]
    )
