"""One hub of the kill run: ``python -m bench._kill_hub`` (settings from ``STEMHUB_*``).

It does what ``stemhub run --plugins n8n_bridge --http`` does (the bridge's routes on the
hub's HTTP server, the bridge's outbox worker, recovery once its frontends are up), with
one more plugin, the kill run's resumable backend (:mod:`bench._kill_backend`), which the
command line cannot add. ``KILLBENCH_SERVICE_URL`` is the separation service.

With ``KILLBENCH_ENGINE=1`` it also splits a short tone with the builtin ``local`` engine
once it is up, so the hub owns what a hub that served local jobs owns when it is killed:
the engine's forkserver, its resource tracker and a pool worker. Those are the processes
that must die with it.

Prints ``READY <url>`` once it serves HTTP. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from bench._kill_backend import KillBenchPlugin
from stemhub.backends.base import SeparationTask
from stemhub.config import Settings
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import OutputFormat, Quality, StemSet
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import write_test_tone

BRIDGE = "n8n_bridge"
log = logging.getLogger("killbench.hub")


async def _progress(percent: float, message: str | None = None) -> None:
    return None


async def warm_engine(hub: Hub) -> None:
    """One local split of a 0.3 s tone: starts the engine's processes and keeps them."""
    began = time.monotonic()
    work = hub.settings.work_dir / f"engine-warmup-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    tone = write_test_tone(work / "tone.wav", seconds=0.3)
    task = SeparationTask(
        job_id=f"warmup{os.getpid()}",
        stem_set=StemSet.BOTH,
        stems=("vocals", "instrumental"),
        output_format=OutputFormat.WAV,
        quality=Quality.FAST,
        input_path=tone,
        out_dir=work / "out",
    )
    backend = hub.backend("local")
    try:
        engine_id = await backend.start(task)
        await backend.wait(task, engine_id, _progress)
    except Exception:
        log.exception("the local engine did not warm up")
        return
    log.info("local engine warm in %.1f s", time.monotonic() - began)


async def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    plugin = KillBenchPlugin(os.environ["KILLBENCH_SERVICE_URL"])
    pm = get_plugin_manager(only=(BRIDGE,), extra=[("killbench", plugin)])
    hub = Hub(settings, pm=pm, frontends=[BRIDGE])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await hub.open()
    bridge = hub.frontend(BRIDGE)
    assert bridge is not None
    worker = asyncio.create_task(bridge.run(), name="bridge-outbox")
    server = HubServer(hub)
    engine: asyncio.Task[None] | None = None
    try:
        await hub.recover()
        await server.start()
        print(f"READY {server.url}", flush=True)
        if os.environ.get("KILLBENCH_ENGINE") == "1":
            engine = asyncio.create_task(warm_engine(hub))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, worker], return_when=asyncio.FIRST_COMPLETED)
        if worker.done() and worker.exception() is not None:
            raise RuntimeError("the bridge's outbox worker stopped") from worker.exception()
    finally:
        for task in (worker, engine):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (worker, engine) if t is not None), return_exceptions=True
        )
        await server.stop()
        await hub.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    asyncio.run(main())
