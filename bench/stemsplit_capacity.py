"""One hub, the fake StemSplit, 1,000 concurrent jobs: webhooks vs polling.

For each completion mode a fresh fake StemSplit server (40 s per job, 60 requests a
minute per key, fixed windows like the hosted API) runs in a process of its own
(``python -m tests.fakes.stemsplit``), so its timing does not depend on how busy
the hub is, and a fresh hub (SQLite store, HTTP app on loopback for the webhook
receiver) runs in this process. All jobs are submitted at once as file jobs (upload,
create, wait, deliver); a "bench" frontend records when each job is delivered.

Time factor: API time runs ``1 / --time-factor`` times faster than real time. The fake
and the hub's StemSplit backend share one ``ScaledClock`` (same anchor in both
processes), so the 40 s job time, the 60 s
rate-limit window, Retry-After, poll intervals and webhook deadlines all shrink by the
same factor; every figure below is in API seconds (multiply by the factor for the real
seconds this run took). Only HTTP, disk and CPU time are not scaled: at the default
factor 0.05 a 10 ms stall of the hub reads as 0.2 s of API time.

Figures per mode: API requests per job (and by route), requests/s to the API (mean; the
most the hub's pacer sent in any 60 s window, which is what the hub controls, and the
most that arrived at the fake in any 60 s, which adds both processes' scheduling
jitter), 429s received, completion-to-delivery latency
(fake job finished -> hub delivered) p50/p95/max, split at the moment the backend's
``wait`` returned (the rest is the hub's own pipeline: store writes, hooks, delivery),
and the time to deliver all jobs.
Polling is the baseline the webhook mode is compared with.

    uv run python bench/stemsplit_capacity.py [--jobs 1000] [--time-factor 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stemhub import hookimpl
from stemhub.backends import stemsplit as stemsplit_module
from stemhub.backends.base import ProgressCallback, SeparationResult, SeparationTask
from stemhub.backends.stemsplit.backend import StemSplitBackend
from stemhub.backends.stemsplit.pacing import ScaledClock
from stemhub.backends.stemsplit.settings import StemSplitSettings
from stemhub.frontend import Frontend
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, JobStatus, Origin, Source, SourceKind, StemSet
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import free_port, make_settings, write_test_tone
from tests.fakes.stemsplit import API_PREFIX, INSPECT_PATH

RATE_LIMIT = 60


@dataclass
class Deliveries:
    expected: int
    clock: ScaledClock
    separated: dict[str, float] = field(default_factory=dict)
    at: dict[str, float] = field(default_factory=dict)
    status: Counter[str] = field(default_factory=Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class BenchFrontend(Frontend):
    name = "bench"

    def __init__(self, hub: Hub, seen: Deliveries) -> None:
        super().__init__(hub)
        self.seen = seen

    async def deliver(self, job: Job) -> None:
        self.seen.at[job.id] = self.seen.clock.monotonic()
        self.seen.status[job.status.value] += 1
        if len(self.seen.at) >= self.seen.expected:
            self.seen.done.set()


class TimedStemSplitBackend(StemSplitBackend):
    """The StemSplit backend, noting when each wait returned (before the hub's own work)."""

    seen: Deliveries

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        result = await super().wait(task, remote_id, progress)
        self.seen.separated[task.job_id] = self.seen.clock.monotonic()
        return result


class BenchPlugin:
    """The StemSplit backend on the shared clock, its webhook route, and the frontend."""

    def __init__(self, seen: Deliveries, stemsplit: StemSplitSettings) -> None:
        self.seen = seen
        self.stemsplit = stemsplit

    @hookimpl
    def stemhub_register_backends(self, register: Callable[..., None]) -> None:
        def factory(hub: Hub) -> StemSplitBackend:
            backend = TimedStemSplitBackend(
                hub.settings,
                self.stemsplit,
                store=hub.store,
                sealer=hub.sealer,
                clock=self.seen.clock,
            )
            backend.seen = self.seen
            return backend

        register("stemsplit", factory)

    @hookimpl
    def stemhub_register_routes(self, register: Callable[..., None], hub: Hub) -> None:
        stemsplit_module.stemhub_register_routes(register, hub)

    @hookimpl
    def stemhub_register_frontends(self, register: Callable[..., None]) -> None:
        register("bench", lambda hub: BenchFrontend(hub, self.seen))


@contextlib.asynccontextmanager
async def fake_service(clock: ScaledClock, job_s: float) -> AsyncIterator[tuple[str, str]]:
    """The fake StemSplit in its own process on the shared clock; (base URL, API key)."""
    mono, wall = clock.anchor
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.stemsplit",
        "--time-factor",
        repr(clock.factor),
        "--anchor",
        f"{mono!r},{wall!r}",
        "--processing-s",
        repr(job_s),
        "--rate-limit",
        str(RATE_LIMIT),
        "--stems-mode",
        "copy",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        if not line or line[0] != "LISTENING":
            raise RuntimeError(f"the fake StemSplit did not start: {line}")
        yield line[1], line[2]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_mode(mode: str, jobs: int, job_s: float, factor: float, tmp: Path) -> dict[str, Any]:
    audio = write_test_tone(tmp / "clip.wav", seconds=1.0, sample_rate=22050)
    clock = ScaledClock(factor)
    seen = Deliveries(expected=jobs, clock=clock)
    async with fake_service(clock, job_s) as (base_url, api_key):
        port = free_port()
        stemsplit = StemSplitSettings(_env_file=None, api_key=api_key, base_url=base_url)
        settings = make_settings(
            tmp / f"hub-{mode}",
            concurrency=jobs + 16,
            progress_interval_s=5.0,
            public_url=f"http://127.0.0.1:{port}" if mode == "webhook" else None,
        )
        pm = get_plugin_manager(
            only=(), block="stemsplit", extra=[("bench-stemsplit", BenchPlugin(seen, stemsplit))]
        )
        hub = Hub(settings, pm=pm, lease_s=600.0, recovery_interval_s=600.0)
        started_real = time.perf_counter()
        async with hub, HubServer(hub, port=port).running():
            hub.start_frontend("bench")
            started = clock.monotonic()
            request = JobRequest(
                source=Source(kind=SourceKind.FILE, path=str(audio)),
                stems=StemSet.FOUR_STEMS,
                backend="stemsplit",
                origin=Origin(platform="bench"),
            )
            submitted = [await hub.submit(request) for _ in range(jobs)]
            timeout_real = max(300.0, jobs * 8 * 60 / RATE_LIMIT * factor * 3)
            await asyncio.wait_for(seen.done.wait(), timeout_real)
            finished = clock.monotonic()
            stored = [await hub.require_job(job.id) for job in submitted]
            backend = hub.backend("stemsplit")
            assert isinstance(backend, StemSplitBackend)
            peak_sent = backend.pacer.stats.peak_in_window
        real_s = time.perf_counter() - started_real
        async with httpx.AsyncClient() as http:
            origin = base_url.removesuffix(API_PREFIX)
            state = (await http.get(origin + INSPECT_PATH)).json()
    api = [
        (t, route, status)
        for t, route, status in state["requestLog"]
        if not route.startswith("storage_")
    ]
    routes = Counter(route for _, route, _ in api)
    remote_jobs = state["jobs"]
    latencies: list[float] = []
    backend_latencies: list[float] = []
    for job in stored:
        remote = remote_jobs.get(job.remote_id or "")
        if remote is None or job.id not in seen.at:
            continue
        done_at = remote["created"] + remote["processS"]
        latencies.append(seen.at[job.id] - done_at)
        if job.id in seen.separated:
            backend_latencies.append(seen.separated[job.id] - done_at)
    span = max(t for t, _, _ in api) - min(t for t, _, _ in api)
    return {
        "mode": mode,
        "completed": sum(1 for job in stored if job.status is JobStatus.COMPLETED),
        "failed": Counter(
            job.error_code for job in stored if job.status is not JobStatus.COMPLETED
        ),
        "remote_jobs": len(remote_jobs),
        "requests_per_job": len(api) / jobs,
        "routes": {name: count / jobs for name, count in sorted(routes.items())},
        "mean_rps": len(api) / span if span else float("nan"),
        "max_per_window": state["maxInWindow"],
        "peak_sent": peak_sent,
        "rate_limited": sum(1 for _, _, status in api if status == 429),
        "backend_p50": percentile(backend_latencies, 50),
        "backend_p95": percentile(backend_latencies, 95),
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "latency_max": max(latencies) if latencies else float("nan"),
        "all_delivered_s": finished - started,
        "real_s": real_s,
        "deliveries": len(state["deliveries"]),
    }


def report(results: list[dict[str, Any]], jobs: int, job_s: float, factor: float) -> None:
    print(
        f"{jobs} concurrent jobs, {job_s:.0f} s each, one hub, fake StemSplit limited to "
        f"{RATE_LIMIT} requests/min; API time {1 / factor:.0f}x faster than real "
        f"(figures in API seconds)"
    )
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("jobs completed", lambda r: f"{r['completed']}/{jobs}"),
        (
            "jobs failed (codes)",
            lambda r: ",".join(f"{k}:{v}" for k, v in r["failed"].items()) or "-",
        ),
        ("remote jobs created", lambda r: f"{r['remote_jobs']}"),
        ("API requests per job", lambda r: f"{r['requests_per_job']:.2f}"),
        (
            "  by route",
            lambda r: ", ".join(f"{k} {v:.2f}" for k, v in r["routes"].items()),
        ),
        ("requests/s to the API (mean)", lambda r: f"{r['mean_rps']:.3f}"),
        (
            f"most sent by the hub in any 60 s (limit {RATE_LIMIT})",
            lambda r: f"{r['peak_sent']}",
        ),
        ("most arrived at the API in any 60 s", lambda r: f"{r['max_per_window']}"),
        ("429 answers", lambda r: f"{r['rate_limited']}"),
        ("completion->backend result p50 s", lambda r: f"{r['backend_p50']:.1f}"),
        ("completion->backend result p95 s", lambda r: f"{r['backend_p95']:.1f}"),
        ("completion->delivery p50 s", lambda r: f"{r['latency_p50']:.1f}"),
        ("completion->delivery p95 s", lambda r: f"{r['latency_p95']:.1f}"),
        ("completion->delivery max s", lambda r: f"{r['latency_max']:.1f}"),
        ("all jobs delivered after s", lambda r: f"{r['all_delivered_s']:.0f}"),
        ("real seconds for the run", lambda r: f"{r['real_s']:.1f}"),
    ]
    names = [r["mode"] for r in results]
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{name:>12}" for name in names))
    for label, cell in rows:
        if label.strip() == "by route":
            for result in results:
                print(f"{'  ' + result['mode'] + ' by route':<{width}}  {cell(result)}")
            continue
        print(f"{label:<{width}}  " + "  ".join(f"{cell(r):>12}" for r in results))
    by_mode = {r["mode"]: r for r in results}
    if {"webhook", "polling"} <= by_mode.keys():
        web, poll = by_mode["webhook"], by_mode["polling"]
        print(
            f"webhooks vs polling: {web['requests_per_job']:.2f} vs "
            f"{poll['requests_per_job']:.2f} requests/job, p50 completion->delivery "
            f"{web['latency_p50']:.1f} s vs {poll['latency_p50']:.1f} s"
        )


async def main_async(args: argparse.Namespace) -> int:
    results = []
    for mode in args.modes:
        with tempfile.TemporaryDirectory(prefix=f"capacity-{mode}-") as tmp:
            results.append(
                await run_mode(mode, args.jobs, args.job_seconds, args.time_factor, Path(tmp))
            )
    report(results, args.jobs, args.job_seconds, args.time_factor)
    over = [r for r in results if r["peak_sent"] > RATE_LIMIT or r["completed"] < args.jobs]
    return 1 if over else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--job-seconds", type=float, default=40.0)
    parser.add_argument("--time-factor", type=float, default=0.05)
    parser.add_argument("--modes", nargs="+", default=["webhook", "polling"])
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
