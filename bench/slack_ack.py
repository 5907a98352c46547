"""Slack: how fast /slack/events acknowledges, and how many Web API calls a job costs.

Slack gives an app 3 seconds to acknowledge a command, a shortcut or an event. This
sends N signed slash commands (default 1,000), one after another, to the hub's HTTP
server on loopback and measures the time to each HTTP answer (the ack), while the jobs
those commands start run in the background (fetch, fake separation, upload to the mock
Web API). In the same run, on the same server, the same client measures baselines,
interleaved with the stemhub requests (one of each per round, in rotating order) so
all four see the same background load:

- ``floor``: a route on the hub's app that answers 200 to any POST (uvicorn + Starlette);
- ``bare hmac``: a route that only checks the v0 signature and answers 200;
- ``bolt default``: a bolt ``AsyncApp`` as its README shows it (``process_before_response``
  off, so bolt polls every 10 ms for the listener's ``ack()``), acking and doing nothing;
- ``stemhub``: ``/slack/events`` with ``/split <link> vocals``: ack, then the job.

Then it runs jobs through three ways in and counts the Web API calls each job made
(``auth.test`` is once per process and not counted): ``/split`` with uploads (4 stems),
``/split`` with links instead of uploads, and the shortcut on a Slack-hosted file. Each
job separates for 2 s with progress reported every 0.5 s; the plugin's default
``progress_interval_s`` (3 s) decides how many of those become ``chat.update`` calls.

    uv run python bench/slack_ack.py [--requests 1000] [--jobs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import stemhub_slack.plugin  # noqa: E402

from stemhub import hookimpl  # noqa: E402
from stemhub.http import HubServer  # noqa: E402
from stemhub.hub import Hub  # noqa: E402
from stemhub.models import Stage  # noqa: E402
from stemhub.testing import (  # noqa: E402
    FakeBackendControls,
    free_port,
    make_settings,
    open_test_hub,
    write_test_tone,
)
from tests.fakes.slack import (  # noqa: E402
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    TEST_BOT_TOKEN,
    FileHost,
    MockSlack,
    message_shortcut,
    signed,
    slack_file,
    slash_command,
)

SECRET = "bench-signing-secret"
SLACK_DEADLINE_MS = 3000.0


def _valid(body: bytes, headers: Any) -> bool:
    ts = headers.get("x-slack-request-timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    base = b"v0:" + ts.encode() + b":" + body
    expected = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-slack-signature", ""))


def _bolt_default_app() -> AsyncApp:
    async def authorize() -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=None,
            team_id=TEAM_ID,
            bot_token=TEST_BOT_TOKEN,
            bot_id=BOT_ID,
            bot_user_id=BOT_USER_ID,
        )

    app = AsyncApp(signing_secret=SECRET, authorize=authorize, name="bench-baseline")

    async def split(ack: AsyncAck) -> None:
        await ack()

    app.command("/split")(split)
    return app


class BaselineRoutes:
    """The baseline endpoints, added to the same hub app through the routes hook."""

    def __init__(self) -> None:
        self.bolt = AsyncSlackRequestHandler(_bolt_default_app())

    @hookimpl
    def stemhub_register_routes(self, register: Callable[[BaseRoute], None], hub: Hub) -> None:
        async def bare(request: Request) -> Response:
            ok = _valid(await request.body(), request.headers)
            return PlainTextResponse("", status_code=200 if ok else 401)

        async def bolt(request: Request) -> Response:
            return await self.bolt.handle(request)

        async def floor(request: Request) -> Response:
            await request.body()
            return PlainTextResponse("")

        register(Route("/bench/floor", floor, methods=["POST"]))
        register(Route("/bench/bare", bare, methods=["POST"]))
        register(Route("/bench/bolt", bolt, methods=["POST"]))


def _configure(api: MockSlack, files: FileHost, **extra: str) -> None:
    env = {
        "STEMHUB_SLACK_BOT_TOKEN": TEST_BOT_TOKEN,
        "STEMHUB_SLACK_SIGNING_SECRET": SECRET,
        "STEMHUB_SLACK_MODE": "http",
        "STEMHUB_SLACK_API_URL": api.api_url,
        "STEMHUB_SLACK_FILE_HOSTS": f'["{files.host}"]',
        **{f"STEMHUB_SLACK_{k.upper()}": v for k, v in extra.items()},
    }
    os.environ.update(env)


@contextlib.asynccontextmanager
async def _hub(data: Path, controls: FakeBackendControls, port: int) -> AsyncIterator[Hub]:
    settings = make_settings(
        data,
        default_backend="fake",
        allow_private_networks=True,
        http_port=port,
        public_url=f"http://127.0.0.1:{port}",
        progress_interval_s=0.5,
    )
    hub = open_test_hub(settings, controls, frontends=["slack"])
    hub.pm.register(stemhub_slack.plugin, name="slack")
    hub.pm.register(BaselineRoutes(), name="bench-baselines")
    async with hub:
        yield hub


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


async def _measure(
    client: httpx.AsyncClient, url: str, bodies: list[str], *, sign: bool = True
) -> list[float]:
    timings: list[float] = []
    for body in bodies:
        headers = signed(body, SECRET) if sign else {}
        started = time.perf_counter()
        response = await client.post(url, content=body, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return timings


async def ack_latency(work: Path, requests: int) -> list[tuple[str, dict[str, float]]]:
    tone = write_test_tone(work / "tone.wav", seconds=1.0)
    async with contextlib.AsyncExitStack() as stack:
        # this part measures acks: Slack's rate limits (and the plugin's pace) are run a
        # thousand times faster so 1,000 jobs in one channel drain in the same minutes
        api = await stack.enter_async_context(MockSlack(rate_scale=1000.0).running())
        files = await stack.enter_async_context(
            FileHost(token=TEST_BOT_TOKEN, audio=tone.read_bytes()).running()
        )
        public = await stack.enter_async_context(
            FileHost(token=TEST_BOT_TOKEN, audio=tone.read_bytes()).running()
        )
        _configure(api, files, channel_interval_s="0.001")
        port = free_port()
        controls = FakeBackendControls(progress_steps=2)
        hub = await stack.enter_async_context(_hub(work / "ack-data", controls, port))
        server = await stack.enter_async_context(HubServer(hub, port=port).running())
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        song = public.url + "/cdn/song.wav"
        commands = [
            slash_command(f"{song} vocals", response_url=api.response_url(f"c{i}"))
            for i in range(requests + 1)
        ]
        endpoints = {
            "floor": f"{server.url}/bench/floor",
            "bare hmac": f"{server.url}/bench/bare",
            "bolt default": f"{server.url}/bench/bolt",
            "stemhub /split": f"{server.url}/slack/events",
        }
        for url in endpoints.values():
            await _measure(client, url, commands[:1])
        await _drain(hub)
        # one request to each endpoint per round, so all see the same background load
        samples: dict[str, list[float]] = {name: [] for name in endpoints}
        for index, body in enumerate(commands[1:]):
            names = list(endpoints)
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name] += await _measure(client, endpoints[name], [body])
        jobs_seen = len(await hub.store.list_jobs(limit=requests + 10)) - 1
        await _drain(hub, within_s=900)
        print(f"stemhub started {jobs_seen} jobs while acking; all delivered")
        results = list(samples.items())
        return [(name, _percentiles(samples)) for name, samples in results]


async def _drain(hub: Hub, within_s: float = 60.0) -> None:
    """Wait until every job the hub holds was delivered."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        jobs = await hub.store.list_jobs(limit=100_000)
        if jobs and all(job.stage is Stage.DONE for job in jobs):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("jobs were still running at the deadline")


CALLS_TIME_SCALE = 10.0
"""Slack's rate limits run this much faster on both sides (the simulator's windows, the
plugin's pace) while calls are counted, so 20 jobs in one channel take seconds."""


async def calls_per_job(work: Path, jobs: int) -> list[tuple[str, Counter[str], int]]:
    tone = write_test_tone(work / "tone.wav", seconds=1.0)
    scenarios: list[tuple[str, dict[str, str], bool]] = [
        ("/split, uploads (4 stems)", {"upload_stems": "true"}, False),
        ("/split, links (4 stems)", {"upload_stems": "false"}, False),
        ("shortcut, Slack file (4 stems)", {"upload_stems": "true"}, True),
    ]
    results: list[tuple[str, Counter[str], int]] = []
    for index, (name, extra, shortcut) in enumerate(scenarios):
        async with contextlib.AsyncExitStack() as stack:
            api = await stack.enter_async_context(MockSlack(rate_scale=CALLS_TIME_SCALE).running())
            files = await stack.enter_async_context(
                FileHost(token=TEST_BOT_TOKEN, audio=tone.read_bytes()).running()
            )
            public = await stack.enter_async_context(
                FileHost(token=TEST_BOT_TOKEN, audio=tone.read_bytes()).running()
            )
            # Slack's one message per second per channel, scaled (not the ack run's pace)
            _configure(api, files, channel_interval_s=str(1.0 / CALLS_TIME_SCALE), **extra)
            port = free_port()
            controls = FakeBackendControls(delay_s=2.0, progress_steps=40)
            hub = await stack.enter_async_context(_hub(work / f"calls-{index}", controls, port))
            server = await stack.enter_async_context(HubServer(hub, port=port).running())
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
            await hub.frontends["slack"].identity()  # type: ignore[attr-defined]
            bodies = []
            for i in range(jobs):
                if shortcut:
                    url = files.file_url(f"F{i:06d}", "song.wav")
                    file = slack_file(f"F{i:06d}", "song.wav", url)
                    message = api.user_message("C0MUSIC", files=[file])
                    bodies.append(
                        message_shortcut(
                            files=[file],
                            response_url=api.response_url(f"s{i}"),
                            message_ts=message.ts,
                        )
                    )
                else:
                    bodies.append(
                        slash_command(
                            f"{public.url}/cdn/song.wav 4", response_url=api.response_url(f"c{i}")
                        )
                    )
            await _measure(client, f"{server.url}/slack/events", bodies)
            await _drain(hub, within_s=300)
            delivered = await hub.store.list_jobs(limit=jobs + 5)
            assert len(delivered) == jobs and all(j.delivered_at for j in delivered)
            counted = [call for call in api.calls if call.method != "auth.test"]
            counts = Counter(call.method for call in counted)
            results.append((name, counts, sum(1 for call in counted if call.error)))
    return results


def _print_latency(rows: list[tuple[str, dict[str, float]]], requests: int) -> None:
    print(f"\nack latency over {requests} signed requests on loopback (ms)")
    print(f"{'endpoint':<20}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'mean':>8}")
    for name, figures in rows:
        cells = "".join(f"{figures[k]:>8.2f}" for k in ("p50", "p95", "p99", "max", "mean"))
        print(f"{name:<20}{cells}")
    stemhub = dict(rows)["stemhub /split"]
    floor = dict(rows)["floor"]
    print(
        f"stemhub p99 {stemhub['p99']:.2f} ms = {stemhub['p99'] / SLACK_DEADLINE_MS:.2%} of "
        f"Slack's 3 s; {stemhub['p99'] - floor['p99']:+.2f} ms over the HTTP floor"
    )


def _print_calls(rows: list[tuple[str, Counter[str], int]], jobs: int) -> None:
    methods = sorted({m for _name, counts, _refused in rows for m in counts})
    print(f"\nWeb API calls per job (mean over {jobs} jobs; auth.test once per process)")
    for name, counts, refused in rows:
        total = sum(counts.values()) / jobs
        detail = ", ".join(f"{m} {counts[m] / jobs:.2f}" for m in methods if counts[m])
        print(f"{name:<32}{total:>6.2f}  ({detail}; {refused} refused in all)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        os.chdir(work)
        os.environ["STEMHUB_CONFIG"] = str(work / "absent.toml")
        latency = await ack_latency(work, args.requests)
        _print_latency(latency, args.requests)
        calls = await calls_per_job(work, args.jobs)
        _print_calls(calls, args.jobs)


if __name__ == "__main__":
    asyncio.run(main())
