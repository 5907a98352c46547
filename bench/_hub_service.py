"""A loopback separation service whose jobs complete a fixed delay after they are created.

The hub-overhead benchmark needs a backend whose own cost is known and constant, so
whatever time and memory the runs add on top of it belongs to the client side. The
service does no work: it reads and counts uploaded bytes, and answers jobs as COMPLETED
once ``delay_s`` have passed since ``POST /jobs``.

Two ways to learn that a job finished, one per client style:

- ``GET /jobs/{id}/wait``: a long poll that returns once the job completed (or after
  ``WAIT_TIMEOUT_S`` with the current status); the blocking tutorial client parks one
  thread on it per job.
- ``GET /events``: one streamed response that carries one line per completed job id, the
  way a webhook subscription pushes completions; the async client holds a single
  connection for all its jobs instead of one per job.

``POST /deliver`` stands in for the chat platform the result is posted to; it reads the
body and answers 204.

Run as ``python -m bench._hub_service --delay 2``: prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from stemhub.http import tcp_listener

WAIT_TIMEOUT_S = 30.0


@dataclass
class ServiceJob:
    id: str
    created: float
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> str:
        return "COMPLETED" if self.done.is_set() else "PROCESSING"


class SeparationService:
    """State of the fake service: uploads seen, jobs and who listens for completions."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.jobs: dict[str, ServiceJob] = {}
        self.uploads: dict[str, int] = {}
        self.listeners: set[asyncio.Queue[str]] = set()
        self.delivered = 0

    def _complete(self, job: ServiceJob) -> None:
        job.done.set()
        for queue in self.listeners:
            queue.put_nowait(job.id)

    async def upload(self, request: Request) -> Response:
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
        except ClientDisconnect:
            # a client that stopped mid-upload (a run that failed) is no news here
            return Response(status_code=499)
        key = uuid.uuid4().hex
        self.uploads[key] = size
        return JSONResponse({"uploadKey": key, "bytes": size})

    async def create_job(self, request: Request) -> Response:
        body = await request.json()
        if body.get("uploadKey") not in self.uploads:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no upload"}}, 404)
        job = ServiceJob(id=uuid.uuid4().hex, created=time.monotonic())
        self.jobs[job.id] = job
        asyncio.get_running_loop().call_later(self.delay_s, self._complete, job)
        return JSONResponse({"id": job.id, "status": job.status}, 201)

    def _job(self, request: Request) -> ServiceJob | None:
        return self.jobs.get(request.path_params["job_id"])

    async def get_job(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no job"}}, 404)
        return JSONResponse({"id": job.id, "status": job.status})

    async def wait_job(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no job"}}, 404)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.done.wait(), WAIT_TIMEOUT_S)
        return JSONResponse({"id": job.id, "status": job.status})

    async def events(self, _request: Request) -> Response:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.listeners.add(queue)

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield b": listening\n"
                while True:
                    first = await queue.get()
                    batch = [first]
                    while not queue.empty():
                        batch.append(queue.get_nowait())
                    yield ("\n".join(batch) + "\n").encode()
            finally:
                self.listeners.discard(queue)

        return StreamingResponse(lines(), media_type="text/plain")

    async def deliver(self, request: Request) -> Response:
        await request.body()
        self.delivered += 1
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/upload", self.upload, methods=["POST"]),
                Route("/jobs", self.create_job, methods=["POST"]),
                Route("/jobs/{job_id}", self.get_job),
                Route("/jobs/{job_id}/wait", self.wait_job),
                Route("/events", self.events),
                Route("/deliver", self.deliver, methods=["POST"]),
            ]
        )


async def serve(delay_s: float) -> None:
    sock = tcp_listener("127.0.0.1", 0)
    sock.listen(4096)
    config = uvicorn.Config(
        SeparationService(delay_s).app(),
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=60,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await server.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds until a job completes")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.delay))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
