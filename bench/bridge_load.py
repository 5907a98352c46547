"""Load on the n8n bridge with wrk: the bridge's reads beside a bare Starlette endpoint.

The hub (bridge plugin, fake backend, SQLite store) and a bare Starlette app (one route
answering a small JSON object, no middleware, no store) run in one server process, each
on its own uvicorn server with the same settings (:class:`stemhub.http.ServerLimits`);
``wrk`` (Debian package ``wrk``) drives them from another process, one endpoint after
the other in the same run:

- ``GET /bare`` on the bare app: the framework's floor on this machine, on the hub's
  server code and again on a plain ``uvicorn.Server`` with uvicorn's own defaults and
  listener (the two should match: a gap is a cost of our server code, as the 40 ms
  Nagle stall :func:`stemhub.http.tcp_listener` removed);
- ``GET /healthz`` on the hub: the hub's app and middleware, no auth, no store;
- ``GET /api/v1/jobs/{id}`` and ``GET /v1/jobs/{id}``: API key check, the per-key rate
  limit, the job read and its rendering with fresh signed links.

Each line shows req/s, p50 and p99 and the share of the bare endpoint's req/s; the
server's RSS is printed before and after. ``--profile FILE`` writes a cProfile of the
server process (``python -m pstats FILE``).

    nice -n 10 uv run --all-packages python bench/bridge_load.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
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
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def row(self, floor: float) -> str:
        return (
            f"{self.name:<28} {self.rps:>9.0f} {self.p50_ms:>8.2f} {self.p99_ms:>8.2f} "
            f"{self.errors:>7} {self.rps / floor:>8.0%}"
        )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if found is None:
        raise ValueError(f"wrk printed a latency this bench does not read: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _wrk(name: str, url: str, args: argparse.Namespace, headers: dict[str, str]) -> Result:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    command += ["--latency", "--timeout", "10s"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run(
        [*command, url], check=True, capture_output=True, text=True, timeout=args.duration + 60
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    try:
        p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        raise RuntimeError(f"could not read wrk's output for {name}:\n{out}") from None
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
    count = (int(bad.group(1)) if bad else 0) + (int(errors.group(1)) if errors else 0)
    return Result(name, rps, p50, p99, count)


async def _serve(data_dir: Path, info_file: Path) -> None:
    """The server process: a hub with the bridge, its outbox worker and a file server."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Route
    from stemhub_n8n_bridge.frontend import BridgeFrontend

    from stemhub.http import HubServer, serve_asgi
    from stemhub.hub import Hub
    from stemhub.plugin.manager import get_plugin_manager
    from stemhub.testing import (
        FakeBackendControls,
        FakeBackendPlugin,
        free_port,
        make_settings,
        write_test_tone,
    )
    from tests.bridge.conftest import serve

    os.environ.setdefault("STEMHUB_N8N_BRIDGE_RATE_LIMIT", "100000000/minute")
    song = data_dir / "song.wav"
    write_test_tone(song, seconds=1.0)
    files = Starlette(routes=[Route("/song.wav", lambda _r: FileResponse(song))])
    port = free_port()
    settings = make_settings(
        data_dir / "hub",
        default_backend="fake",
        allowed_hosts=["127.0.0.1"],
        concurrency=64,
        http_port=port,
    )
    controls = FakeBackendControls(progress_steps=1)
    pm = get_plugin_manager(only=("n8n_bridge",), extra=[("fake", FakeBackendPlugin(controls))])

    async def bare_endpoint(_request: object) -> JSONResponse:
        return JSONResponse({"id": "job", "status": "COMPLETED", "progress": 100})

    bare = Starlette(routes=[Route("/bare", bare_endpoint)])
    # the same bare app on uvicorn's own defaults and listener: a floor no setting of ours
    # touches (a hub server 40 ms slower per request than this once hid behind the row
    # above, which shares the hub's server code)
    plain_port = free_port()
    plain = uvicorn.Server(
        uvicorn.Config(bare, port=plain_port, log_level="warning", access_log=False, lifespan="off")
    )
    plain_task = asyncio.create_task(plain.serve())
    async with (
        Hub(settings, pm=pm, frontends=["n8n_bridge"]) as hub,
        serve(files) as files_url,
        serve_asgi(bare) as bare_url,
    ):
        server = HubServer(hub, port=port)
        await server.start()
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
            "bare": bare_url,
            "plain": f"http://127.0.0.1:{plain_port}",
        }
        await asyncio.to_thread(info_file.write_text, json.dumps(info))
        try:
            await asyncio.Event().wait()
        finally:
            worker.cancel()
            await server.stop()
            plain.should_exit = True
            await plain_task


def _wait_for_server(process: subprocess.Popen[bytes], info_file: Path) -> dict[str, str]:
    for _ in range(600):
        if info_file.exists():
            return dict(json.loads(info_file.read_text()))
        if process.poll() is not None:
            raise RuntimeError("the server process exited")
        time.sleep(0.1)
    raise RuntimeError("the server process did not start in a minute")


def _run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="bridge-load-") as tmp:
        info_file = Path(tmp) / "info.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if args.profile:
            env["BRIDGE_LOAD_PROFILE"] = str(Path(args.profile).resolve())
        process = subprocess.Popen([sys.executable, __file__, "--serve", tmp], cwd=ROOT, env=env)
        try:
            info = _wait_for_server(process, info_file)
            _phases(args, info, psutil.Process(process.pid))
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _phases(args: argparse.Namespace, info: dict[str, str], server: psutil.Process) -> None:
    url, job = info["url"], info["job"]
    auth = {"Authorization": f"Bearer {info['token']}"}
    for check in (f"{url}/api/v1/jobs/{job}", f"{url}/v1/jobs/{job}"):
        answer = httpx.get(check, headers=auth)
        assert answer.status_code == 200, answer.text
    warm = argparse.Namespace(**{**vars(args), "duration": 2})
    _wrk("warm-up", f"{url}/api/v1/jobs/{job}", warm, auth)
    rss_start = server.memory_info().rss / 2**20
    results = [
        _wrk("bare Starlette GET /bare", info["bare"] + "/bare", args, {}),
        _wrk("same, uvicorn's defaults", info["plain"] + "/bare", args, {}),
        _wrk("hub GET /healthz", url + "/healthz", args, {}),
        _wrk("GET /api/v1/jobs/{id}", f"{url}/api/v1/jobs/{job}", args, auth),
        _wrk("GET /v1/jobs/{id}", f"{url}/v1/jobs/{job}", args, auth),
    ]
    rss_end = server.memory_info().rss / 2**20
    floor = results[0].rps
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s on loopback; "
        f"server in its own process ({time.strftime('%Y-%m-%d %H:%M')})"
    )
    print(f"{'endpoint':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'of bare':>8}")
    for result in results:
        print(result.row(floor))
    print(f"server RSS: {rss_start:.0f} MiB after warm-up, {rss_end:.0f} MiB at the end")


def _serve_main(data: Path) -> None:
    profile_to = os.environ.get("BRIDGE_LOAD_PROFILE")
    if not profile_to:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(data, data / "info.json"))
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(_serve(data, data / "info.json"))
    except KeyboardInterrupt:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(profile_to)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", help="write a cProfile of the server process here")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_main(Path(args.serve))
        return
    _run(args)


if __name__ == "__main__":
    main()
