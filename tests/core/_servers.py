"""Real HTTP servers on loopback for tests: uvicorn serving an ASGI app on a free port.

Each server runs its own event loop in a thread, so one server can live for a whole test
module while every test keeps its own loop; starting and stopping uvicorn per test would
cost more than most of the tests themselves.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from stemhub.http import tcp_listener


@dataclass
class RunningServer:
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@contextlib.contextmanager
def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> Iterator[RunningServer]:
    """Serve ``app`` on a kernel-chosen port of ``host`` until the block ends."""
    sock = tcp_listener(host, 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        loop="asyncio",
        log_level="critical",
        lifespan="off",
        ws="none",
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_cert_reqs=ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.005)
        yield RunningServer(host, port, "https" if ssl_certfile else "http")
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(timeout=10)
        sock.close()
