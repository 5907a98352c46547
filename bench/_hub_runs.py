"""One measured run of the hub-overhead benchmark, in a process of its own.

``python -m bench._hub_runs hub|tutorial --api URL --chat URL --n N --audio WAV`` pushes
N jobs through one client style against a fake separation API and a fake chat platform
(two processes of :mod:`bench._hub_service`) and prints one JSON line of figures. A
fresh process per run makes ``ru_maxrss`` the peak of that run alone.

- ``hub``: a :class:`~stemhub.hub.Hub` on a temp SQLite store (``concurrency`` as
  given, else the hub's default)
  with the bench backend and frontend of :mod:`bench._hub_plugin`; all N requests
  arrive at once and are submitted concurrently.
- ``tutorial``: the StemSplit Discord tutorial's way: on each command the bot reads the
  attachment into memory, then ``loop.run_in_executor(None, job)`` runs blocking HTTP
  calls (upload the bytes, create, wait, post the result) on the default thread pool.

"Added latency" is the time from the backend's answer (the hub backend's ``wait``
returning; the tutorial's wait call returning) to the end of the delivery post; its
"hub part" ends where the frontend's ``deliver`` is called (the tutorial has none:
it posts right away). "End to end" runs from the request's arrival to the delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

SAMPLE_EVERY_S = 0.02
HUB_CONNECTIONS = 64


@dataclass
class RunFigures:
    mode: str
    n: int
    wall_s: float
    added_ms: dict[str, float]
    hub_part_ms: dict[str, float]
    end_to_end_ms: dict[str, float]
    peak_in_flight: int
    base_rss_mb: float
    peak_rss_mb: float
    failures: int
    cpu_s: float
    failure_sample: str | None = None
    workers: int | None = None
    submit_s: float | None = None

    @property
    def jobs_per_s(self) -> float:
        return self.n / self.wall_s

    @classmethod
    def from_json(cls, line: str) -> RunFigures:
        data: dict[str, Any] = json.loads(line)
        return cls(**data)


async def arrivals(n: int, rate: float) -> AsyncIterator[int]:
    """Request indices as they arrive: all at once (``rate`` 0) or ``rate`` per second."""
    started = time.perf_counter()
    for i in range(n):
        if rate > 0:
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        yield i


def summarize(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of per-job latencies in ms."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"p50": ordered[0], "p99": ordered[0], "max": ordered[0]}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p99": cuts[98], "max": ordered[-1]}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_s() -> float:
    """CPU seconds this process used so far (all threads); robust to a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """The process's peak resident set (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_hub(
    api: str,
    chat: str,
    n: int,
    audio: Path,
    delay_s: float,
    rate: float = 0.0,
    concurrency: int | None = None,
) -> RunFigures:
    from bench._hub_plugin import ServicePlugin, Timeline
    from stemhub.config import QuotaSettings, Settings
    from stemhub.hub import Hub
    from stemhub.models import JobRequest, Origin, OutputFormat, Source, SourceKind, StemSet
    from stemhub.plugin.manager import get_plugin_manager

    timeline = Timeline(expected=n)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    no_quota = QuotaSettings(per_user=None, per_channel=None, per_guild=None, per_api_key=None)
    with tempfile.TemporaryDirectory(prefix="stemhub-bench-") as data_dir:
        settings = Settings(
            _env_file=None,
            data_dir=Path(data_dir),
            default_backend="bench",
            concurrency=concurrency or Settings.model_fields["concurrency"].default,
            public_url=None,
            signing_key="stemhub-bench-signing-key",
            quota=no_quota,
        )
        sessions = [
            aiohttp.ClientSession(
                base_url=url,
                connector=aiohttp.TCPConnector(limit=HUB_CONNECTIONS),
                timeout=timeout,
            )
            for url in (api, chat)
        ]
        async with sessions[0] as backend_session, sessions[1] as frontend_session:
            plugin = ServicePlugin(backend_session, frontend_session, timeline)
            pm = get_plugin_manager(only=(), extra=[("bench", plugin)])
            hub = Hub(settings, pm=pm, frontends=["bench"])
            await hub.open()
            base_rss = current_rss_mb()
            try:
                requests = [
                    JobRequest(
                        source=Source(kind=SourceKind.FILE, path=str(audio), filename=audio.name),
                        stems=StemSet.FOUR_STEMS,
                        output_format=OutputFormat.MP3,
                        origin=Origin(
                            platform="bench",
                            user_id=f"user-{i % 500}",
                            channel_id=f"channel-{i % 50}",
                            context={"reply_to": f"message-{i}"},
                        ),
                    )
                    for i in range(n)
                ]
                in_flight = [0]

                async def sample() -> None:
                    while True:
                        in_flight[0] = max(in_flight[0], hub.running_jobs)
                        await asyncio.sleep(SAMPLE_EVERY_S)

                async def submit(request: JobRequest) -> None:
                    arrived = time.perf_counter()
                    job = await hub.submit(request)
                    timeline.submitted[job.id] = arrived

                sampler = asyncio.create_task(sample())
                cpu_before = cpu_s()
                started = time.perf_counter()
                submits = [
                    asyncio.create_task(submit(requests[i])) async for i in arrivals(n, rate)
                ]
                await asyncio.gather(*submits)
                submit_s = time.perf_counter() - started
                await asyncio.wait_for(
                    timeline.all_delivered.wait(), delay_s + 120 + n / 20 + n / (rate or n)
                )
                wall = time.perf_counter() - started
                cpu = cpu_s() - cpu_before
                sampler.cancel()
            finally:
                await hub.close()
    added = [
        1000 * (timeline.delivered[job_id] - completed)
        for job_id, completed in timeline.completed.items()
        if job_id in timeline.delivered
    ]
    hub_part = [
        1000 * (timeline.handed_over[job_id] - completed)
        for job_id, completed in timeline.completed.items()
        if job_id in timeline.handed_over
    ]
    end_to_end = [
        1000 * (delivered - timeline.submitted[job_id])
        for job_id, delivered in timeline.delivered.items()
        if job_id in timeline.submitted
    ]
    return RunFigures(
        mode="hub",
        n=n,
        wall_s=wall,
        added_ms=summarize(added),
        hub_part_ms=summarize(hub_part),
        end_to_end_ms=summarize(end_to_end),
        peak_in_flight=in_flight[0],
        base_rss_mb=base_rss,
        peak_rss_mb=peak_rss_mb(),
        failures=len(timeline.failures),
        cpu_s=cpu,
        failure_sample=next(iter(timeline.failures.values()), None),
        submit_s=submit_s,
    )


STEMS = ("vocals", "drums", "bass", "other")


class TutorialBot:
    """The tutorial's job function, run on the default executor; one shared blocking client.

    The shared ``httpx.Client`` keeps connections alive between calls, which is kinder to
    the baseline than the tutorial's bare ``requests.post`` calls.
    """

    def __init__(self, api: str, chat: str) -> None:
        self.client = httpx.Client(base_url=api, timeout=60.0)
        self.chat = httpx.Client(base_url=chat, timeout=60.0)
        self.lock = threading.Lock()
        self.running = 0
        self.peak_running = 0

    def job(self, data: bytes, filename: str, reply_to: str) -> tuple[float, float]:
        with self.lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        try:
            uploaded = self.client.post("/upload", content=data)
            uploaded.raise_for_status()
            created = self.client.post(
                "/jobs", json={"uploadKey": uploaded.json()["uploadKey"], "fileName": filename}
            )
            created.raise_for_status()
            remote_id = created.json()["id"]
            while True:
                answer = self.client.get(f"/jobs/{remote_id}/wait")
                answer.raise_for_status()
                if answer.json()["status"] == "COMPLETED":
                    break
            completed = time.perf_counter()
            stems = {stem: f"/outputs/{remote_id}/{stem}.mp3" for stem in STEMS}
            posted = self.chat.post("/deliver", json={"job": reply_to, "stems": stems})
            posted.raise_for_status()
            return completed, time.perf_counter()
        finally:
            with self.lock:
                self.running -= 1


async def run_tutorial(
    api: str, chat: str, n: int, attachment: bytes, filename: str, rate: float = 0.0
) -> RunFigures:
    """``attachment`` is the file as the bot downloads it: a fresh copy per command."""
    loop = asyncio.get_running_loop()
    # the default executor is made on first use with min(32, cpus + 4) threads
    workers = min(32, (os.cpu_count() or 1) + 4)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=workers))
    bot = TutorialBot(api, chat)
    base_rss = current_rss_mb()
    arrived: list[float] = []
    futures: list[asyncio.Future[tuple[float, float]]] = []
    cpu_before = cpu_s()
    started = time.perf_counter()
    async for i in arrivals(n, rate):
        arrived.append(time.perf_counter())
        data = bytes(bytearray(attachment))
        futures.append(loop.run_in_executor(None, bot.job, data, filename, f"message-{i}"))
        del data
    submit_s = time.perf_counter() - started
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    wall = time.perf_counter() - started
    cpu = cpu_s() - cpu_before
    bot.client.close()
    bot.chat.close()
    added: list[float] = []
    end_to_end: list[float] = []
    errors: list[str] = []
    for came, outcome in zip(arrived, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            errors.append(f"{type(outcome).__name__}: {outcome}")
            continue
        completed, delivered = outcome
        added.append(1000 * (delivered - completed))
        end_to_end.append(1000 * (delivered - came))
    return RunFigures(
        mode="tutorial",
        n=n,
        wall_s=wall,
        added_ms=summarize(added),
        hub_part_ms=summarize([0.0 for _ in added]),
        end_to_end_ms=summarize(end_to_end),
        peak_in_flight=bot.peak_running,
        base_rss_mb=base_rss,
        peak_rss_mb=peak_rss_mb(),
        failures=len(errors),
        cpu_s=cpu,
        failure_sample=errors[0] if errors else None,
        workers=workers,
        submit_s=submit_s,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["hub", "tutorial"])
    parser.add_argument("--api", required=True, help="base URL of the fake separation API")
    parser.add_argument("--chat", required=True, help="base URL of the fake chat platform")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--delay", type=float, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="arrivals per second, 0: at once")
    parser.add_argument("--concurrency", type=int, default=None, help="the hub's work slots")
    args = parser.parse_args(argv)
    if args.mode == "hub":
        figures = asyncio.run(
            run_hub(
                args.api, args.chat, args.n, args.audio, args.delay, args.rate, args.concurrency
            )
        )
    else:
        attachment = args.audio.read_bytes()
        figures = asyncio.run(
            run_tutorial(args.api, args.chat, args.n, attachment, args.audio.name, args.rate)
        )
    print("RESULT " + json.dumps(asdict(figures)), flush=True)


if __name__ == "__main__":
    main()
