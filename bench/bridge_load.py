"""Load on the n8n bridge: requests per second, p99 latency, and memory after 100,000 requests.

The hub (bridge plugin, fake backend, SQLite store) runs in its own process on loopback;
this process drives it with 64 concurrent clients (one keep-alive connection each) and
reads the server's RSS with psutil. Phases, in order:

- baseline ``GET /healthz``: the same server and HTTP stack with no auth, rate limit or
  store read, so the figures below show what the bridge adds on top of it;
- ``GET /api/v1/jobs/{id}``: auth (key hash), the per-key rate-limit counter (an upsert
  in the store), a job read and the camelCase rendering with fresh signed links;
- ``POST /v1/split`` with a URL source: auth, rate limit, SSRF check, a job insert, and
  the job's whole pipeline in the background (fetch from a loopback file server,
  probe, fake separation, delivery);
- more ``GET /api/v1/jobs/{id}`` until the server has answered ``--total`` requests
  (100,000), then its RSS again.

    uv run python bench/bridge_load.py [--total 100000] [--clients 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> str:
        return (
            f"{self.name:<34} {self.requests:>7} {self.rps:>9.0f} "
            f"{statistics.median(self.latencies_ms):>8.1f} {self.pct(0.99):>8.1f} {self.errors:>6}"
        )


async def _serve(data_dir: Path, info_file: Path) -> None:
    """The server process: a hub with the bridge, its outbox worker and a file server."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route
    from stemhub_n8n_bridge.frontend import BridgeFrontend

    from stemhub.http import HubServer
    from stemhub.hub import Hub
    from stemhub.plugins import get_plugin_manager
    from stemhub.testing import (
        FakeBackendControls,
        FakeBackendPlugin,
        make_settings,
        write_test_tone,
    )
    from tests.bridge.conftest import serve

    os.environ["STEMHUB_N8N_BRIDGE_RATE_LIMIT"] = "100000000/minute"
    song = data_dir / "song.wav"
    write_test_tone(song, seconds=1.0)
    files = Starlette(routes=[Route("/song.wav", lambda _r: FileResponse(song))])
    settings = make_settings(
        data_dir / "hub", default_backend="fake", allowed_hosts=["127.0.0.1"], concurrency=64
    )
    controls = FakeBackendControls(progress_steps=1)
    pm = get_plugin_manager(only=("n8n_bridge",), extra=[("fake", FakeBackendPlugin(controls))])
    async with Hub(settings, pm=pm, frontends=["n8n_bridge"]) as hub, serve(files) as files_url:
        server = HubServer(hub, port=0)
        await server.start()
        hub.outputs.public_url = server.url
        bridge = hub.frontends["n8n_bridge"]
        assert isinstance(bridge, BridgeFrontend)
        worker = asyncio.create_task(bridge.run())
        issued = await bridge.keys.create("bench")
        async with httpx.AsyncClient(base_url=server.url) as client:
            made = await client.post(
                "/v1/split",
                json={"url": files_url + "/song.wav", "wait": 10, "output_format": "WAV"},
                headers={"Authorization": f"Bearer {issued.token}"},
            )
        info = {
            "url": server.url,
            "token": issued.token,
            "job": made.json()["id"],
            "source": files_url + "/song.wav",
        }
        await asyncio.to_thread(info_file.write_text, json.dumps(info))
        try:
            await asyncio.Event().wait()
        finally:
            worker.cancel()
            await server.stop()


async def _drive(
    name: str,
    count: int,
    clients: int,
    send: object,
) -> Phase:
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def one_client() -> None:
        nonlocal next_index, errors
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1)) as client:
            while next_index < count:
                next_index += 1
                started = time.perf_counter()
                try:
                    response = await send(client)  # type: ignore[operator]
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return Phase(name, len(latencies), time.perf_counter() - started, latencies, errors)


async def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bridge-load-") as tmp:
        info_file = Path(tmp) / "info.json"
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [sys.executable, __file__, "--serve", tmp],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            for _ in range(600):
                if info_file.exists():
                    break
                if process.poll() is not None:
                    raise RuntimeError("the server process exited")
                await asyncio.sleep(0.1)
            info = json.loads(info_file.read_text())
            server = psutil.Process(process.pid)
            await _phases(args, info, server)
        finally:
            process.terminate()
            process.wait(10)


async def _phases(args: argparse.Namespace, info: dict[str, str], server: psutil.Process) -> None:
    url, job = info["url"], info["job"]
    auth = {"Authorization": f"Bearer {info['token']}"}
    body = {"url": info["source"], "stems": "VOCALS", "output_format": "WAV"}

    async def health(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(url + "/healthz")

    async def get_job(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"{url}/api/v1/jobs/{job}", headers=auth)

    async def split(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(url + "/v1/split", json=body, headers=auth)

    await _drive("warm-up", 2000, args.clients, get_job)
    rss_start = server.memory_info().rss / 2**20
    phases = [
        await _drive("baseline GET /healthz", args.baseline, args.clients, health),
        await _drive("GET /api/v1/jobs/{id}", args.get, args.clients, get_job),
        await _drive("POST /v1/split (URL source)", args.split, args.clients, split),
    ]
    done = 2000 + sum(p.requests for p in phases)
    soak = max(0, args.total - done)
    phases.append(await _drive("GET /api/v1/jobs/{id} (soak)", soak, args.clients, get_job))
    await asyncio.sleep(2)
    rss_end = server.memory_info().rss / 2**20
    total = done + soak

    print(
        f"\nbridge load: {args.clients} concurrent clients on loopback, server in its own process"
    )
    print(f"{'phase':<34} {'requests':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for phase in phases:
        print(phase.row())
    base = phases[0]
    for phase in phases[1:3]:
        print(
            f"{phase.name}: {phase.rps / base.rps:.0%} of the baseline's req/s, "
            f"p99 +{phase.pct(0.99) - base.pct(0.99):.1f} ms"
        )
    print(
        f"server RSS: {rss_start:.0f} MiB after warm-up, {rss_end:.0f} MiB after {total:,} requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--get", type=int, default=10_000)
    parser.add_argument("--split", type=int, default=2_000)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        data = Path(args.serve)
        asyncio.run(_serve(data, data / "info.json"))
        return
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
