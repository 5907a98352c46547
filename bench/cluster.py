"""Throughput and end-to-end latency of the worker split, beside the single-process hub.

The separation is a fake of fixed duration (``--separate-s``) so the figures measure the
system (broker, database, object store, hub), not an engine. One run measures:

- ``single``: the quick-start shape, one hub process separating in process with
  ``--slots`` separation slots (the local engine's ``separate_concurrency``);
- ``workers=K``: the same hub with a broker (RabbitMQ on loopback) and K
  ``stemhub worker`` processes of one slot each (Celery concurrency 1).

Every configuration gets a fresh PostgreSQL database (the single hub too, so the
database is not the difference) and the same ``--jobs`` CLI jobs submitted at once.
Stems go to the hub's output folder (one machine: the folder store), so S3 costs are
not in these figures (bench/s3_upload_memory.py measures those).

Printed per configuration: jobs/s, end-to-end p50/p99 (submit -> delivered), the
hub's CPU per job, the broker's (RabbitMQ's beam.smp) CPU per job, the workers' CPU
per job. The ideal is ``slots / separate_s`` jobs/s and ``separate_s`` latency at p50.

    uv run python bench/cluster.py [--jobs 60] [--separate-s 0.5] [--workers 1,2,4]

``--kill-run N`` runs the cluster test's scenario instead (tests/scale/_cluster_run.py:
2 hubs and 2 workers as processes, N jobs from the bridge plus N/10 from the CLI, one
worker and one hub SIGKILLed mid-run and restarted, moto's S3 server) and prints what
the test asserts (lost, finished or delivered twice, downloads) with the throughput and
accept-to-callback p50/p99:

    uv run --all-packages python bench/cluster.py --kill-run 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from stemhub.backends.base import ProgressCallback, SeparationResult, SeparationTask
from stemhub.hub import Hub
from stemhub.models import JobRequest, Origin, Source, SourceKind
from stemhub.plugin.manager import get_plugin_manager
from stemhub.plugin.marker import hookimpl
from stemhub.testing import FakeBackend, FakeBackendControls, make_settings, write_test_tone

REPO = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "STEMHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BROKER_URL = os.environ.get("STEMHUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


class SlottedFake(FakeBackend):
    """The fake with a fixed number of separation slots, like a CPU engine in process."""

    def __init__(self, controls: FakeBackendControls, slots: asyncio.Semaphore) -> None:
        super().__init__(controls)
        self.slots = slots

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        async with self.slots:
            return await super().wait(task, remote_id, progress)


class SlottedPlugin:
    def __init__(self, controls: FakeBackendControls, slots: int) -> None:
        self.controls = controls
        self.slots = asyncio.Semaphore(slots)

    @hookimpl
    def stemhub_register_backends(self, register: Any) -> None:
        register("fake", lambda _hub: SlottedFake(self.controls, self.slots))


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _broker_process() -> psutil.Process | None:
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            return process
    return None


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start_workers(
    count: int, env: dict[str, str], tmp: Path, delay: float
) -> list[subprocess.Popen[bytes]]:
    from tests.scale.conftest import purge_queues

    purge_queues(BROKER_URL)
    workers = []
    for index in range(count):
        variables = {
            **os.environ,
            **env,
            "STEMHUB_DATA_DIR": str(tmp / f"worker-{index}"),
            "STEMHUB_SIGNING_KEY": "bench",
            "STEMHUB_PROGRESS_INTERVAL_S": "1",
            "TEST_WORKER_NAME": f"bench-{index}",
            "TEST_FAKE_DELAY_S": str(delay),
            "TEST_FAKE_STEPS": "2",
            "PYTHONPATH": str(REPO),
        }
        log = (tmp / f"worker-{index}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.scale._worker_main"],
                env=variables,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
            )
        )
    for index in range(count):
        log_path = tmp / f"worker-{index}.log"
        while " ready." not in log_path.read_text(errors="replace"):
            if workers[index].poll() is not None:
                raise RuntimeError(log_path.read_text(errors="replace"))
            time.sleep(0.2)
    return workers


async def run_config(
    label: str, *, workers: int, jobs: int, delay: float, slots: int, tmp: Path, song: Path
) -> dict[str, float]:
    db = f"stemhub_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{db}"')
    database_url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{db}"
    output_dir = tmp / f"{label}-outputs"
    broker = BROKER_URL if workers else None
    controls = FakeBackendControls(delay_s=delay, progress_steps=2)
    settings = make_settings(
        tmp / f"{label}-hub",
        database_url=database_url,
        broker_url=broker,
        default_backend="fake",
        output_dir=output_dir,
        progress_interval_s=1.0,
        concurrency=64,
    )
    pm = get_plugin_manager(only=(), extra=[("fake", SlottedPlugin(controls, slots))])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with Hub(settings, pm=pm) as hub:
            if workers:
                env = {
                    "STEMHUB_DATABASE_URL": database_url,
                    "STEMHUB_BROKER_URL": BROKER_URL,
                    "STEMHUB_OUTPUT_DIR": str(output_dir),
                }
                procs = await asyncio.to_thread(_start_workers, workers, env, tmp / label, delay)
            broker_process = _broker_process()
            worker_ps = [psutil.Process(p.pid) for p in procs]
            cpu_hub, cpu_broker = _self_cpu(), _cpu(broker_process)
            cpu_workers = sum(_cpu(p) for p in worker_ps)
            source = Source(kind=SourceKind.FILE, path=str(song))
            started = time.perf_counter()

            async def one(index: int) -> float:
                t0 = time.perf_counter()
                request = JobRequest(
                    source=source, origin=Origin(platform="cli", user_id=f"u{index}")
                )
                job = await hub.submit(request)
                await hub.wait_for(job.id, timeout=600)
                return time.perf_counter() - t0

            latencies = await asyncio.gather(*(one(i) for i in range(jobs)))
            wall = time.perf_counter() - started
            cpu_hub = _self_cpu() - cpu_hub
            cpu_broker = _cpu(broker_process) - cpu_broker
            cpu_workers = sum(_cpu(p) for p in worker_ps) - cpu_workers
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    ordered = sorted(latencies)
    return {
        "jobs_per_s": jobs / wall,
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "hub_cpu_ms": 1000 * cpu_hub / jobs,
        "broker_cpu_ms": 1000 * cpu_broker / jobs,
        "worker_cpu_ms": 1000 * cpu_workers / jobs,
        "ideal": (workers or slots) / delay,
    }


async def kill_run(jobs: int) -> int:
    """The cluster test's scenario at ``jobs`` bridge jobs; 0 when it held, 1 otherwise."""
    from moto.server import ThreadedMotoServer

    from tests.scale._cluster_run import run_cluster
    from tests.scale.conftest import S3Server, purge_queues

    purge_queues(BROKER_URL)
    db = f"stemhub_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{db}"')
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3 = S3Server(endpoint=f"http://{host}:{port}", bucket=f"stems-{uuid.uuid4().hex[:10]}")
    s3.client().create_bucket(Bucket=s3.bucket)
    services = {
        "STEMHUB_DATABASE_URL": f"{ADMIN_URL.rsplit('/', 1)[0]}/{db}",
        "STEMHUB_BROKER_URL": BROKER_URL,
        **s3.env(),
    }
    cli_jobs = max(2, jobs // 10)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-kill-") as name:
            run = await run_cluster(Path(name), services, jobs=jobs, cli_jobs=cli_jobs)
    finally:
        moto.stop()
        await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    final_ids = run.final_ids()
    lost = [j for j in run.bridge_jobs if j not in final_ids]
    twice = [j for j, ids in final_ids.items() if len(ids) > 1]
    not_done = [j.id for j in run.jobs.values() if j.stage.value != "done" or not j.outputs]
    failed = [p.job for p in run.posts if p.event == "job.failed"]
    latencies = run.latencies()
    total = len(run.bridge_jobs) + len(run.cli_jobs)
    print(
        f"{jobs} bridge jobs + {cli_jobs} CLI jobs, 2 hubs + 2 workers (2 slots each, fake "
        f"separation), PostgreSQL + RabbitMQ + moto S3 on loopback, {os.cpu_count()} cores"
    )
    print(
        f"accepted {len(run.bridge_jobs)} + CLI {len(run.cli_jobs)} (exit {run.cli_exit}); "
        f"lost {len(lost)}; delivered twice {len(twice)}; failed {len(failed)}; "
        f"not done {len(not_done)}"
    )
    print(
        f"worker killed mid-task: {run.worker_killed_mid_task}; hub killed holding "
        f"{run.hub_killed_holding} unfinished jobs; tasks received twice: {run.redelivered_tasks}"
    )
    print(f"downloads (every stem, both hubs): {dict(run.downloads)}")
    print(
        f"wall {run.wall_s:.0f} s, {total / run.wall_s:.2f} jobs/s; accept-to-callback "
        f"p50 {statistics.median(latencies):.1f} s, "
        f"p99 {latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]:.1f} s"
    )
    held = not (lost or twice or failed or not_done or run.cli_exit)
    held = held and set(run.downloads) == {"ok"}
    return 0 if held else 1


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--separate-s", type=float, default=0.5)
    parser.add_argument("--slots", type=int, default=2, help="the single hub's separation slots")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--kill-run", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.kill_run:
        return await kill_run(args.kill_run)
    counts = [int(x) for x in args.workers.split(",") if x]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as name:
        tmp = Path(name)
        song = write_test_tone(tmp / "song.wav", seconds=1.0)
        configs = [("single", 0)] + [(f"workers={n}", n) for n in counts]
        for label, workers in configs:
            (tmp / label).mkdir()
            results[label] = await run_config(
                label,
                workers=workers,
                jobs=args.jobs,
                delay=args.separate_s,
                slots=args.slots,
                tmp=tmp,
                song=song,
            )
    print(
        f"{args.jobs} jobs at once, fake separation {args.separate_s:.2f} s, PostgreSQL + "
        f"RabbitMQ on loopback, {os.cpu_count()} cores; single hub: {args.slots} slots"
    )
    print(
        f"{'config':<11} {'jobs/s':>7} {'ideal':>6} {'p50 s':>7} {'p99 s':>7} "
        f"{'hub CPU ms/job':>15} {'broker ms/job':>14} {'workers ms/job':>15}"
    )
    for label, fig in results.items():
        print(
            f"{label:<11} {fig['jobs_per_s']:>7.2f} {fig['ideal']:>6.1f} {fig['p50']:>7.2f} "
            f"{fig['p99']:>7.2f} {fig['hub_cpu_ms']:>15.1f} {fig['broker_cpu_ms']:>14.1f} "
            f"{fig['worker_cpu_ms']:>15.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
