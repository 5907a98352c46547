"""The kill run's loopback peers in one process: the callback receiver and the file server.

``python -m bench._kill_peers --record FILE --song WAV`` prints ``PORT <n>`` and serves:

- ``POST /hook/{tag}``: a per-job callback (one tag per measured run). Every post is
  appended to ``FILE`` as one JSON line (arrival time, the tag, the body's ``type`` and
  ``data.id``, the ``webhook-id`` or ``X-Webhook-Id`` header) and answered 200, whatever
  it holds: the run counts what arrived, so the receiver never refuses.
- ``GET /song.wav``: the source every job's ``url`` names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import IO

from aiohttp import web


class Recorder:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        arrived = time.time()
        try:
            body = json.loads(raw)
            event, job = body.get("type"), (body.get("data") or {}).get("id")
        except (ValueError, AttributeError):
            event, job = None, None
        webhook_id = request.headers.get("webhook-id") or request.headers.get("X-Webhook-Id")
        line = {
            "t": arrived,
            "tag": request.match_info["tag"],
            "job": job,
            "event": event,
            "webhook_id": webhook_id,
        }
        self.handle.write(json.dumps(line) + "\n")
        self.handle.flush()
        return web.Response(status=200, text="ok")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--song", type=Path, required=True)
    args = parser.parse_args(argv)
    song = args.song.read_bytes()
    asyncio.run(serve(args.record, song))


async def serve(record: Path, song: bytes) -> None:
    async def serve_song(_request: web.Request) -> web.Response:
        return web.Response(body=song, content_type="audio/wav")

    with record.open("a") as handle:
        recorder = Recorder(handle)
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/hook/{tag}", recorder.hook)
        app.router.add_get("/song.wav", serve_song)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
